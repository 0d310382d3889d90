#!/usr/bin/env bash
# What the real-browser checks need, installed once; a second run skips whatever is there.
#
#   bash tests/browser/install.sh              # Chromium + ChromeDriver (Debian) and selenium (into .venv)
#   bash tests/browser/install.sh --widgets7   # the same, plus .venv-widgets7 for `make browser-check-widgets7`
#   bash tests/browser/install.sh --chromium   # only Chromium + ChromeDriver (needs no .venv: CI fetches them
#                                              # from Debian's archive while the tests run)
#
# .venv (made by `make install`) must exist. Needs root or sudo for apt-get, and reaches only
# Debian's archive and PyPI.
#
# .venv-widgets7 is the front end Colab's widgets library runs in: ipywidgets 7.7.1 (the version
# Colab pins) in JupyterLab 3.6 with jupyterlab_widgets 1.x. It installs only that front end and
# its kernel (ipykernel 6, which ipywidgets 7.7 imports its comms from); everything else, torch
# and course_utils included, comes from .venv through a .pth file that puts .venv's site-packages
# *after* .venv-widgets7's own on sys.path, so the old ipywidgets and JupyterLab win and nothing
# large is installed twice.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
W7=${W7:-.venv-widgets7}
W7_PACKAGES=("ipywidgets==7.7.1" "jupyterlab_widgets>=1.1,<2" "widgetsnbextension>=3.6,<4" "jupyterlab>=3.6,<4"
             "ipykernel>=6.29,<7")
SELENIUM="selenium>=4.10,<5"

install_chromium() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        echo "chromium and chromedriver: already installed"
    else
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
    fi
}

if [ "${1:-}" = "--chromium" ]; then
    install_chromium
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "install.sh: no $VENV; run 'make install' first" >&2
    exit 1
fi

# 1. Debian's Chromium and its ChromeDriver (same version, from the same archive).
install_chromium

# 2. selenium, into the course's environment (the checks run from there).
if "$VENV/bin/python" -c "import selenium" 2>/dev/null; then
    echo "selenium: already installed"
else
    "$VENV/bin/python" -m pip install -q "$SELENIUM"
fi

[ "${1:-}" = "--widgets7" ] || exit 0

# 3. .venv-widgets7: ipywidgets 7 + JupyterLab 3 on top of .venv.
w7_python="$W7/bin/python"
course=$(cd "$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")" && pwd)
# addsitedir (not a bare path) so that .venv's own .pth files run too: course_utils is installed editable
pth_line="import site; site.addsitedir('$course')"
pth="$W7/lib/python$("$VENV/bin/python" -c "import sys; print('%d.%d' % sys.version_info[:2])")/site-packages/zz_course_venv.pth"
if [ -x "$w7_python" ] && [ "$(cat "$pth" 2>/dev/null)" = "$pth_line" ] && "$w7_python" - <<'EOF' 2>/dev/null
from importlib.metadata import version
from importlib.util import find_spec
assert version("ipywidgets").startswith("7.") and version("jupyterlab").startswith("3."), "wrong versions"
assert version("jupyterlab_widgets").startswith("1.") and find_spec("torch") and find_spec("course_utils")
EOF
then
    echo "$W7: already installed"
    exit 0
fi
rm -rf "$W7"
"$VENV/bin/python" -m venv "$W7"
# installed while .venv is not yet visible, so that pip puts every package the old front end needs
# into $W7 (pip cannot tell a shadowed package from a missing one, and must not touch .venv's)
"$w7_python" -m pip install -q --disable-pip-version-check "${W7_PACKAGES[@]}"
echo "$pth_line" > "$pth"
"$w7_python" -c "import ipywidgets, jupyterlab, torch, course_utils; print('$W7: ipywidgets', ipywidgets.__version__,
'jupyterlab', jupyterlab.__version__, 'torch', torch.__version__, 'from $VENV')"
