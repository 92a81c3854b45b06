from rmcourse.checking import check, expect


def test_check_reports_each_outcome(capsys):
    assert check("ok", lambda: None) is True

    def missing():
        raise NotImplementedError

    def wrong():
        expect(1 + 1 == 3, "1 + 1 should be 3 here")

    def crash():
        return {}["key"]

    assert check("todo", missing) is False
    assert check("bad", wrong) is False
    assert check("boom", crash) is False
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✅ ok"
    assert out[1].startswith("⏳ todo: not implemented yet")
    assert out[2] == "❌ bad: 1 + 1 should be 3 here"
    assert out[3].startswith("❌ boom: KeyError") and "line" in out[3]
