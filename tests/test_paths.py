from rmcourse import paths


def test_artifacts_dir_is_created_under_override(tmp_path, monkeypatch):
    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path / "art"))
    p = paths.artifacts_dir("ch03", "x")
    assert p.is_dir() and p == tmp_path / "art" / "ch03" / "x"


def test_repo_root_holds_the_package():
    assert (paths.repo_root() / "rmcourse" / "__init__.py").exists()
