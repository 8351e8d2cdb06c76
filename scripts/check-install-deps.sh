#!/usr/bin/env bash
# Checks that scripts/install-deps.sh installs everything a configured build
# uses, so a fresh Debian machine can build what this one built.
#
# Every file CMake found (the *_DIR, *_INCLUDE_DIR, *_LIBRARY, *_EXECUTABLE
# ... entries of BUILD_DIR/CMakeCache.txt: what each find_package, including
# the ones a dependency's own CMake config makes, and find_program resolved)
# is mapped to the Debian package that owns it. That package must be listed
# in install-deps.sh or be a hard dependency (Depends/PreDepends, not
# Recommends: install-deps.sh uses --no-install-recommends) of a listed one.
# Prints one line per file and exits 1 naming the packages that are missing.
#
# Usage: check-install-deps.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: check-install-deps.sh BUILD_DIR}
cache="$build/CMakeCache.txt"
[ -f "$cache" ] || { echo "check-install-deps: $cache not found (configure first)" >&2; exit 2; }
command -v dpkg-query >/dev/null && command -v apt-cache >/dev/null ||
  { echo "check-install-deps: needs dpkg-query and apt-cache (Debian)" >&2; exit 2; }

# The package names install-deps.sh passes to apt-get install.
listed=$(sed -n '/apt-get install/,/^$/p' scripts/install-deps.sh | tr ' \\' '\n\n' |
  grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vxE 'apt-get|install|SUDO' | sort -u)
# Everything apt installs for them without recommends (the listed ones too).
# apt-cache prints virtual packages as <name>; they resolve to a listed
# provider, so only real package names matter here.
installed=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances $listed 2>/dev/null | grep -E '^[a-z0-9]' | sed 's/:.*//' | sort -u)

# Entries CMake looks for but the build does not need (a missing one stays
# NOTFOUND and nothing fails): LLVM's FindLibXml2 asks for xmllint.
optional='^LIBXML2_XMLLINT_EXECUTABLE$'

missing=()
while IFS= read -r entry; do
  name=${entry%%:*}
  file=${entry#*=}
  [ -e "$file" ] || continue
  grep -qE "$optional" <<<"$name" && continue
  # dpkg knows a file by the path it was installed at (a library's .so
  # symlink belongs to its -dev package, its target to the runtime one);
  # /lib and /usr/lib are one folder on Debian 12 (merged /usr).
  owner=$(dpkg-query --search "$file" 2>/dev/null || dpkg-query --search "${file#/usr}" 2>/dev/null || true)
  owner=$(printf '%s\n' "$owner" | head -1)
  package=${owner%%: /*}  # "pkg:arch, pkg2: /path" -> "pkg:arch, pkg2"
  if [ -z "$package" ]; then
    printf '%-32s %-56s (no Debian package owns it)\n' "$name" "$file"
    continue
  fi
  if [[ $package == *,* ]]; then  # a folder many packages share, e.g. /usr/include
    printf '%-32s %-56s (a shared folder; the entry\x27s library is checked)\n' "$name" "$file"
    continue
  fi
  package=${package%%:*}
  if grep -qxF "$package" <<<"$listed"; then
    status="listed"
  elif grep -qxF "$package" <<<"$installed"; then
    status="pulled in by a listed package"
  else
    status="MISSING from install-deps.sh"
    missing+=("$package")
  fi
  printf '%-32s %-56s %-24s %s\n' "$name" "$file" "$package" "$status"
done < <(grep -E '^[A-Za-z0-9_]+(_DIR|_INCLUDE_DIR|_LIBRARY|_LIBRARIES|_EXECUTABLE|_PROGRAM):(PATH|FILEPATH)=/' "$cache")

if [ ${#missing[@]} -gt 0 ]; then
  echo "check-install-deps: the build uses packages scripts/install-deps.sh does not install:" \
    "$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi
echo "check-install-deps: every package the build found is installed by scripts/install-deps.sh"
