#!/usr/bin/env bash
# Debian packages the portal and its test suite need. As root they are installed when missing;
# otherwise the missing ones are named so a person can install them.
set -euo pipefail

packages=(
  gettext            # makemessages / compilemessages
  libpango-1.0-0     # WeasyPrint
  libpangoft2-1.0-0  # WeasyPrint
  fonts-dejavu-core  # WeasyPrint needs at least one font
  chromium           # browser tests (Playwright drives Debian's Chromium, no browser download)
  openssh-server     # tests and benchmarks start their own sshd on a loopback port
  openssh-client     # the reference sftp client in benchmarks and simulator tests
  xmlsec1            # pysaml2 signs and checks SAML messages with it (single sign-on)
)
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
