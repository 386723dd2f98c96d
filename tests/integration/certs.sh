#!/usr/bin/env bash
# tests/integration/certs.sh: make the certificates the TLS tests use (openssl CLI only).
#
#   certs.sh [-o OWNER] DIR [CLIENT_CN...]
#
# Creates DIR (if needed) and writes, PEM, keys ECDSA P-256 unless said otherwise:
#   ca.crt ca.key                  the test CA (CN=pgring test CA)
#   server.crt server.key          CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by the CA
#   server2.crt server2.key        the same names, another key (OU=server2): for reload tests
#   server-rsa.crt server-rsa.key  the same names, RSA 2048 (OU=rsa)
#   wronghost.crt wronghost.key    CN and SAN wrong.example.com, signed by the CA
#   expired.crt expired.key        CN=localhost (SAN as server), valid 2020-01-01..2021-01-01 only
#   client-CN.crt client-CN.key    for each CLIENT_CN (default: certuser someoneelse app),
#                                  CN=<CN>, clientAuth, signed by the CA
#   other-ca.crt other-ca.key      a second CA that nobody trusts (CN=pgring untrusted CA)
#   client-untrusted.crt .key      CN=<first CLIENT_CN>, signed by the untrusted CA
# Keys are mode 0600, certificates 0644. With -o OWNER every file is chowned to OWNER
# (and its group): tests run as root and give them to `postgres`, so that PostgreSQL
# (which wants its key owned by itself and 0600), PgBouncer (running as postgres),
# root's pgring and root's libpq (which wants a client key 0600) can all use them.
#
# Every certificate is checked with `openssl verify` before the script exits (the good
# ones verify against ca.crt and their names, the expired, wrong-host and untrusted
# ones fail for the expected reason); exit 1 with a message if anything is off.
# Dates come from `openssl ca -startdate/-enddate` (openssl 3.0's x509 and req
# cannot set a start date in the past), so no faketime is needed.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

owner=
while getopts o:h opt; do
	case $opt in
	o) owner=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# >= 1)) || usage
dir=$1
shift
clients=("$@")
((${#clients[@]} > 0)) || clients=(certuser someoneelse app)
for cn in "${clients[@]}"; do
	[[ $cn =~ ^[A-Za-z0-9_.@-]+$ ]] || { echo "certs.sh: client CN [$cn]: letters, digits, _ . @ - only" >&2; exit 2; }
done
command -v openssl >/dev/null 2>&1 || { echo "certs.sh: openssl not found (tools/setup installs it)" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
work=$dir/.ca
rm -rf "$work"
mkdir -p "$work/new"
umask 077

die() { echo "certs.sh: $*" >&2; exit 1; }
ossl() { # run openssl quietly; on failure show its output
	local out
	out=$(openssl "$@" 2>&1) || die "openssl $1 failed: $out"
}

# One configuration for the CAs (openssl ca) and the requests (openssl req).
cat >"$work/openssl.cnf" <<EOF
[ ca ]
default_ca = testca

[ testca ]
dir            = $work
database       = \$dir/index.txt
serial         = \$dir/serial
new_certs_dir  = \$dir/new
default_md     = sha256
policy         = policy_any
unique_subject = no
preserve       = yes
email_in_dn    = no
copy_extensions = none

[ policy_any ]
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied

[ req ]
distinguished_name = req_dn
prompt             = no
utf8               = yes

[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ server_localhost ]
basicConstraints       = critical, CA:FALSE
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ server_wrong ]
basicConstraints       = critical, CA:FALSE
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:wrong.example.com
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ client ]
basicConstraints       = critical, CA:FALSE
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
EOF
: >"$work/index.txt"
echo 1000 >"$work/serial"

# Validity of the good certificates: from yesterday (no clock-skew surprises) for ten years.
since=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
until=$(date -u -d '+3650 days' +%Y%m%d%H%M%SZ)

newkey() { # NAME [rsa]
	if [[ ${2:-} == rsa ]]; then
		ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$1.key"
	else
		ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve -out "$dir/$1.key"
	fi
}
# sign NAME SUBJECT EXTENSIONS CA_NAME|self [START END]: a key, a request, a certificate.
sign() {
	local name=$1 subj=$2 ext=$3 ca=$4 start=${5:-$since} end=${6:-$until}
	ossl req -new -config "$work/openssl.cnf" -key "$dir/$name.key" -subj "$subj" -out "$work/$name.csr"
	local who=()
	if [[ $ca == self ]]; then
		who=(-selfsign -keyfile "$dir/$name.key")
	else
		who=(-cert "$dir/$ca.crt" -keyfile "$dir/$ca.key")
	fi
	ossl ca -batch -config "$work/openssl.cnf" -notext -rand_serial "${who[@]}" \
		-startdate "$start" -enddate "$end" -extensions "$ext" \
		-in "$work/$name.csr" -out "$dir/$name.crt"
}

# The CAs.
newkey ca
sign ca "/O=pgring test/CN=pgring test CA" v3_ca self 20200101000000Z "$until"
newkey other-ca
sign other-ca "/O=pgring test/CN=pgring untrusted CA" v3_ca self 20200101000000Z "$until"

# Servers.
newkey server
sign server "/O=pgring test/OU=server/CN=localhost" server_localhost ca
newkey server2
sign server2 "/O=pgring test/OU=server2/CN=localhost" server_localhost ca
newkey server-rsa rsa
sign server-rsa "/O=pgring test/OU=rsa/CN=localhost" server_localhost ca
newkey wronghost
sign wronghost "/O=pgring test/OU=wronghost/CN=wrong.example.com" server_wrong ca
newkey expired
sign expired "/O=pgring test/OU=expired/CN=localhost" server_localhost ca 20200101000000Z 20210101000000Z

# Clients.
for cn in "${clients[@]}"; do
	newkey "client-$cn"
	sign "client-$cn" "/O=pgring test/CN=$cn" client ca
done
newkey client-untrusted
sign client-untrusted "/O=pgring test/OU=untrusted/CN=${clients[0]}" client other-ca

rm -rf "$work"

# ---------------------------------------------------------------- self-check

# verify_ok FILE [openssl verify options]; verify_bad FILE EXPECTED_TEXT [options]
verify_ok() {
	local f=$1 out
	shift
	out=$(openssl verify -x509_strict -CAfile "$dir/ca.crt" "$@" "$dir/$f" 2>&1) ||
		die "$f does not verify: $out"
}
verify_bad() {
	local f=$1 want=$2 out
	shift 2
	if out=$(openssl verify -x509_strict -CAfile "$dir/ca.crt" "$@" "$dir/$f" 2>&1); then
		die "$f verifies but must not ($*): $out"
	fi
	[[ $out == *"$want"* ]] || die "$f: expected [$want] from openssl verify, got: $out"
}
verify_ok ca.crt
for f in server server2 server-rsa; do
	verify_ok "$f.crt" -purpose sslserver -verify_hostname localhost
	verify_ok "$f.crt" -purpose sslserver -verify_ip 127.0.0.1
done
for cn in "${clients[@]}"; do
	verify_ok "client-$cn.crt" -purpose sslclient
	[[ $(openssl x509 -in "$dir/client-$cn.crt" -noout -subject -nameopt RFC2253) == "subject=CN=$cn,O=pgring test" ]] ||
		die "client-$cn.crt: subject is $(openssl x509 -in "$dir/client-$cn.crt" -noout -subject -nameopt RFC2253)"
done
verify_ok wronghost.crt -purpose sslserver -verify_hostname wrong.example.com
verify_bad wronghost.crt "hostname mismatch" -verify_hostname localhost
verify_bad expired.crt "certificate has expired"
verify_bad client-untrusted.crt "unable to get local issuer certificate"
out=$(openssl verify -CAfile "$dir/other-ca.crt" "$dir/client-untrusted.crt" 2>&1) ||
	die "client-untrusted.crt does not verify against other-ca.crt: $out"
# Each key belongs to its certificate.
for crt in "$dir"/*.crt; do
	key=${crt%.crt}.key
	[[ $(openssl x509 -in "$crt" -noout -pubkey) == "$(openssl pkey -in "$key" -pubout)" ]] ||
		die "$(basename "$key") does not match $(basename "$crt")"
done

chmod 0755 "$dir"
chmod 0644 "$dir"/*.crt
chmod 0600 "$dir"/*.key
if [[ -n $owner ]]; then
	chown "$owner:" "$dir" "$dir"/*.crt "$dir"/*.key || die "chown $owner failed"
fi
