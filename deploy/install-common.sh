# Shared by deploy/install-agent.sh and deploy/install-collector.sh; sourced, not run.
#
# Every function either succeeds or exits through die() with one line saying what is wrong
# and how to fix it. Paths on the target machine are written as they will be seen at run
# time (/etc/netsonde/...) and created under "$ROOT" (empty, or the --root directory).
# shellcheck shell=bash disable=SC2034  # ETC_DIR and friends are used by the sourcing scripts

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_DIR=/opt/netsonde/venv
ETC_DIR=/etc/netsonde
UNIT_DIR=/etc/systemd/system
ROOT=${NETSONDE_ROOT:-}
NO_SYSTEMD=0
PACKAGE=${NETSONDE_PACKAGE:-}
SUPPORTED_ARCHES="amd64 arm64 armhf"
# Where PyPI has wheels for every compiled dependency of the agent (cryptography's cffi,
# msgpack). Elsewhere (armhf) pip builds them: it needs a compiler and the headers.
WHEEL_ARCHES="amd64 arm64"
BUILD_PACKAGES="gcc python3-dev libffi-dev"
ARCH=
MIN_PYTHON=3.11

# Removed on exit, however the script ends.
TEMP_PATHS=()
cleanup() { [ "${#TEMP_PATHS[@]}" -eq 0 ] || rm -rf "${TEMP_PATHS[@]}"; }
trap cleanup EXIT

step() { printf '%s: == %s\n' "$PROG" "$*"; }
info() { printf '%s:    %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: error: %s (see %s --help)\n' "$PROG" "$*" "$PROG" >&2
    exit 2
}

# $1: the option's name, $2: the number of arguments left including the option.
need_value() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }

# Sets TOKEN from the first line of file $1, or of standard input for "-": never from a
# command line, which other users of the machine can read.
read_token() {
    local source=$1
    if [ "$source" = - ]; then
        IFS= read -r TOKEN || [ -n "$TOKEN" ] || usage_error "--token-file -: nothing on standard input"
    else
        [ -f "$source" ] && [ -r "$source" ] || usage_error "--token-file $source: not a readable file"
        IFS= read -r TOKEN <"$source" || [ -n "$TOKEN" ] || usage_error "--token-file $source: the file is empty"
    fi
    # Leading and trailing blanks (an editor's, a CR) trimmed; blanks inside are kept, and refused.
    TOKEN=${TOKEN#"${TOKEN%%[![:space:]]*}"}
    TOKEN=${TOKEN%"${TOKEN##*[![:space:]]}"}
    [ -n "$TOKEN" ] || usage_error "--token-file $source: no token in it"
}

check_root_option() {
    [ -z "$ROOT" ] && return 0
    case $ROOT in
        /*) ;;
        *) usage_error "--root $ROOT: must be an absolute path" ;;
    esac
    ROOT=${ROOT%/}
    [ "$ROOT" != "" ] || usage_error "--root /: leave --root out to install into the running system"
}

check_http_url() {  # $1: option name, $2: value; checked as the agent's config will check it
    local problem
    problem=$("$PYTHON" - "$2" <<'PY'
import sys
from urllib.parse import urlsplit

url = sys.argv[1]
try:
    parts = urlsplit(url)
    parts.port  # raises ValueError on a bad port
    ok = parts.scheme in ("http", "https") and bool(parts.hostname)
except ValueError:
    ok = False
if not ok:
    print("not an http(s) URL with a host")
elif any(c in url for c in '"\\\'') or not url.isprintable() or " " in url:
    print("quotes, backslashes, spaces and control characters are not allowed")
PY
) || die "cannot check $1 with $PYTHON"
    [ -z "$problem" ] || usage_error "$1 $2: $problem"
}

check_system() {
    [ "$(id -u)" -eq 0 ] || die "must be run as root (for example: sudo bash $0 ...)"

    local os_release=${NETSONDE_OS_RELEASE:-/etc/os-release} id="" id_like="" name=""
    [ -r "$os_release" ] || die "cannot read $os_release: not a supported system (Debian, Ubuntu or Raspberry Pi OS)"
    # shellcheck disable=SC1090
    id=$(. "$os_release" && printf '%s' "${ID:-}")
    # shellcheck disable=SC1090
    id_like=$(. "$os_release" && printf '%s' "${ID_LIKE:-}")
    # shellcheck disable=SC1090
    name=$(. "$os_release" && printf '%s' "${PRETTY_NAME:-${ID:-unknown}}")
    case " $id $id_like " in
        *" debian "* | *" ubuntu "* | *" raspbian "*) ;;
        *) die "unsupported system: $name (supported: Debian, Ubuntu, Raspberry Pi OS)" ;;
    esac

    command -v dpkg >/dev/null || die "dpkg not found: not a Debian-based system"
    # dpkg's, not uname's: a 32-bit Raspberry Pi OS on a 64-bit kernel is armhf.
    ARCH=${NETSONDE_ARCH:-$(dpkg --print-architecture)}
    local arch=$ARCH
    case " $SUPPORTED_ARCHES " in
        *" $arch "*) ;;
        *) die "unsupported architecture: $arch (supported: $SUPPORTED_ARCHES)" ;;
    esac
    for tool in useradd runuser install; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install passwd util-linux coreutils)"
    done
    info "system: $name, $arch"
}

check_python() {
    # Debian's own Python, not the first in PATH: a pyenv or conda one under /root cannot be
    # run by the service user, and would break when its owner cleans up.
    PYTHON=${PYTHON:-/usr/bin/python3}
    command -v "$PYTHON" >/dev/null \
        || die "$PYTHON not found; install it with: apt-get install python3 python3-venv"
    "$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" \
        || die "netsonde needs Python $MIN_PYTHON or newer (Debian 12, Ubuntu 24.04, Raspberry Pi OS 12); $PYTHON is $("$PYTHON" --version 2>&1)"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        || die "Python's venv module is missing; install it with: apt-get install python3-venv"
    info "python: $("$PYTHON" --version 2>&1)"
}

# The Debian packages of $BUILD_PACKAGES that are not installed, on one line.
missing_build_packages() {
    local pkg missing=()
    for pkg in $BUILD_PACKAGES; do
        dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed \
            || missing+=("$pkg")
    done
    printf '%s' "${missing[*]}"
}

# On an architecture without wheels on PyPI for the compiled dependencies (armhf), makes
# sure pip can build them: installs $BUILD_PACKAGES with apt-get, or stops naming them.
# Run after the checks and before anything else changes, so a failure leaves no user and
# no half-made virtualenv behind. Raspberry Pi OS's /etc/pip.conf (piwheels) is read by
# pip as it is; it saves the builds when piwheels has the versions pip picks.
ensure_build_deps() {
    case " $WHEEL_ARCHES " in
        *" $ARCH "*) info "build tools: not needed on $ARCH (wheels from PyPI)"; return ;;
    esac
    if grep -qs piwheels /etc/pip.conf; then
        info "pip index: piwheels, from /etc/pip.conf"
    fi
    local missing
    missing=$(missing_build_packages)
    if [ -z "$missing" ]; then
        info "build tools: $BUILD_PACKAGES installed (pip builds cffi and msgpack on $ARCH)"
        return
    fi
    command -v apt-get >/dev/null \
        || die "on $ARCH pip builds cffi and msgpack from source, which needs: $missing; install them (Debian packages: apt-get install $missing) and run this script again"
    info "on $ARCH pip builds cffi and msgpack from source: installing $missing"
    # The package lists of a fresh image may be missing or stale: updated once on failure.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
            || die "apt-get could not install $missing; install them with: apt-get install $missing, then run this script again"
    fi
    missing=$(missing_build_packages)
    [ -z "$missing" ] || die "still missing after apt-get: $missing; install them with: apt-get install $missing"
    info "installed $BUILD_PACKAGES"
}

# Creates the system group and user $1 (home $2, never created, no login) unless it exists.
# Under --root the user is still created on the running system: the files are owned by it.
ensure_user() {
    local user=$1 home=$2 comment=$3
    if id -u "$user" >/dev/null 2>&1; then
        info "user $user exists (uid $(id -u "$user"))"
        return
    fi
    local nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    useradd --system --user-group --home-dir "$home" --no-create-home --shell "$nologin" \
        --comment "$comment" "$user"
    info "created system user $user (uid $(id -u "$user"))"
}

# $1 mode, $2 owner:group, $3 path: a directory with exactly this mode and owner.
ensure_dir() {
    install -d -m "$1" -o "${2%%:*}" -g "${2##*:}" "$3"
}

# Runs a command as user $1 from / (the caller's directory may be unreadable to it).
as_user() {
    local user=$1
    shift
    (cd / && runuser -u "$user" -- "$@")
}

# Creates (or repairs) the virtualenv and installs netsonde into it: $PACKAGE, a pip
# requirement such as netsonde==0.1.0 or a wheel, or by default this checkout. Reinstalls
# every time, so a second run upgrades to what the checkout now holds.
install_venv() {
    local venv=$ROOT$VENV_DIR
    ensure_dir 0755 root:root "$ROOT/opt/netsonde"
    # A virtualenv whose Python went away (a Python upgrade) or that the service user cannot
    # run is made anew; the packages are installed again below anyway.
    if [ -x "$venv/bin/python" ] && as_user nobody "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        info "virtualenv $venv exists"
    else
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv" || die "cannot create a virtualenv in $venv (apt-get install python3-venv)"
        as_user nobody "$venv/bin/python" -c 'import sys' 2>/dev/null \
            || die "$venv/bin/python cannot be run by other users; use a system Python such as PYTHON=/usr/bin/python3, not $PYTHON"
        info "created virtualenv $venv"
    fi
    local spec=$PACKAGE src=""
    if [ -z "$spec" ]; then
        # A copy of the checkout: building in place would leave build/ and *.egg-info,
        # owned by root, in the developer's tree.
        src=$(mktemp -d)
        TEMP_PATHS+=("$src")
        tar -C "$REPO_DIR" --exclude=.git --exclude=.venv --exclude=tests --exclude=build \
            --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ --exclude='.*_cache' \
            --exclude=.hypothesis -cf - . | tar -C "$src" -xf -
        # The collector's storage and metrics libraries are an extra: an agent on armhf
        # must not need wheels (psycopg's) that do not exist there.
        spec=$src${EXTRAS:+[$EXTRAS]}
        info "installing netsonde${EXTRAS:+[$EXTRAS]} from $REPO_DIR"
    else
        info "installing $spec"
    fi
    # --no-cache-dir: a wheel cached by an earlier run (a pure-Python msgpack built with
    # MSGPACK_PUREPYTHON=1, say) is never reused. The index is pip's own configuration:
    # /etc/pip.conf names piwheels on Raspberry Pi OS.
    local status=0 pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-cache-dir)
    if [ -n "$src" ]; then
        # The checkout's build requirements go into the virtualenv once, instead of into a
        # throw-away build environment fetched again on every run.
        local requires=()
        mapfile -t requires < <("$venv/bin/python" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' \
            "$src/pyproject.toml")
        [ "${#requires[@]}" -gt 0 ] || die "cannot read the build requirements of $REPO_DIR/pyproject.toml"
        "${pip[@]}" "${requires[@]}" || status=$?
        pip+=(--no-build-isolation)
    fi
    [ "$status" -ne 0 ] || "${pip[@]}" --upgrade "$spec" || status=$?
    [ "$status" -eq 0 ] || die "pip could not install $spec into $venv (see its messages above)"
    info "installed netsonde $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("netsonde"))')"
}

# $1: unit name. Installs the shipped unit; a unit that differs (edited by hand instead of
# with a drop-in) is kept next to it as NAME.bak.
install_unit() {
    local name=$1 src=$REPO_DIR/systemd/$1 dest=$ROOT$UNIT_DIR/$1
    [ -f "$src" ] || die "$src is missing: run this script from a netsonde checkout"
    install -d -m 0755 "$ROOT$UNIT_DIR"
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        info "unit $UNIT_DIR/$name unchanged"
        return
    fi
    if [ -f "$dest" ]; then
        cp -p "$dest" "$dest.bak"
        warn "$UNIT_DIR/$name differed from the shipped unit; the old one is now $name.bak (use 'systemctl edit ${name%.service}' for local changes)"
    fi
    install -m 0644 -o root -g root "$src" "$dest"
    info "installed $UNIT_DIR/$name"
}

# What to do with systemd: "live" (enable and start), "offline" (--root: enable only, by
# symlink, with systemctl --root) or "skip" (--no-systemd, or systemd is not running).
systemd_mode() {
    if [ "$NO_SYSTEMD" -eq 1 ]; then
        echo skip-option
    elif [ -n "$ROOT" ]; then
        if command -v systemctl >/dev/null; then echo offline; else echo skip-nosystemctl; fi
    elif [ -d /run/systemd/system ]; then
        echo live
    else
        echo skip-notrunning
    fi
}

# $1: unit name, $2: 1 to start it too (or restart it, to load the new code), 0 not to.
systemd_enable() {
    local unit=$1 start=$2 mode
    mode=$(systemd_mode)
    case $mode in
        skip-option)
            info "--no-systemd: not enabling or starting $unit" ;;
        skip-notrunning)
            info "systemd is not running here (no /run/systemd/system): $unit is installed but not enabled or started; on a systemd host run: systemctl enable --now $unit" ;;
        skip-nosystemctl)
            info "systemctl not found: $unit is installed under $ROOT but not enabled" ;;
        offline)
            systemctl --root="$ROOT" --quiet enable "$unit" \
                || die "systemctl --root=$ROOT enable $unit failed"
            info "enabled $unit under $ROOT (not started: --root)" ;;
        live)
            systemctl daemon-reload
            systemctl --quiet enable "$unit"
            info "enabled $unit"
            if [ "$start" -eq 1 ]; then
                if systemctl --quiet is-active "$unit"; then
                    systemctl restart "$unit"
                    info "restarted $unit"
                else
                    systemctl start "$unit"
                    info "started $unit"
                fi
                sleep 2
                systemctl --quiet is-active "$unit" \
                    || die "$unit did not stay up; see: journalctl -u $unit -n 50"
            fi ;;
    esac
}
