# shellcheck shell=bash
# bench/tlslib.sh: client-side TLS settings shared by the TLS benchmarks (bench/tls, and
# TLS=1 bench/compare, TLS=1 bench/idle). Sourced, not run.
#
# Input (environment):
#   TLS_DIR        certificates (server.crt, server.key, ca.crt); made by bench/tlscerts
#                  when missing
#   TLS13_CIPHERS  client_tls13_ciphers: TLS 1.3 suites, OpenSSL names (e.g.
#                  TLS_CHACHA20_POLY1305_SHA256); empty = each server's default
#   TLS_CIPHERS    client_tls_ciphers (TLS <= 1.2 cipher string); empty = default
#   TLS_PROTOCOLS  client_tls_protocols (e.g. tlsv1.3, secure, all); empty = default
#   TLS_SSLMODE    client_tls_sslmode (default require)
#
# How the TLS 1.3 suite is forced on each kind of server:
#   pgring       client_tls13_ciphers (and the other keys) in its ini;
#   PgBouncer    client_tls13_ciphers when the binary knows the key (1.25+); 1.18 does not
#                (and refuses to start with it), so instead its OpenSSL gets a configuration
#                file (OPENSSL_CONF, [system_default_sect] Ciphersuites = ...), which
#                SSL_CTX_new applies: the server side still decides;
#   PostgreSQL   15 has no setting for TLS 1.3 suites (ssl_ciphers is TLS 1.2 only), so the
#                CLIENT (libpq's OpenSSL, or tlshs --ciphers) offers only those suites.
# tls_setup WORKDIR must be called first.

# OpenSSL names -> wolfSSL names (for tlshs/idleconns --ciphers), TLS 1.3 suites
tls_wolfssl_names() { # LIST (colon separated)
	local out='' s
	for s in ${1//:/ }; do
		case $s in
		TLS_AES_128_GCM_SHA256) s=TLS13-AES128-GCM-SHA256 ;;
		TLS_AES_256_GCM_SHA384) s=TLS13-AES256-GCM-SHA384 ;;
		TLS_CHACHA20_POLY1305_SHA256) s=TLS13-CHACHA20-POLY1305-SHA256 ;;
		TLS_AES_128_CCM_SHA256) s=TLS13-AES128-CCM-SHA256 ;;
		TLS_AES_128_CCM_8_SHA256) s=TLS13-AES128-CCM-8-SHA256 ;;
		esac
		out+=${out:+:}$s
	done
	printf '%s\n' "$out"
}

tls_openssl_cnf() { # FILE SUITES: an OpenSSL config that limits TLS 1.3 suites to SUITES
	cat >"$1" <<EOF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = $2
EOF
	chmod 644 "$1"
}

tls_setup() { # WORKDIR: certificates (TLS_DIR, made if missing), OpenSSL config files
	local work=$1 here
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	: "${TLS_DIR:=$work/tls}" "${TLS13_CIPHERS:=}" "${TLS_CIPHERS:=}" "${TLS_PROTOCOLS:=}" "${TLS_SSLMODE:=require}"
	"$here/tlscerts" "$TLS_DIR" || return 1
	TLS_OPENSSL_CNF=
	if [[ -n $TLS13_CIPHERS ]]; then
		TLS_OPENSSL_CNF=$work/openssl-tls13.cnf
		tls_openssl_cnf "$TLS_OPENSSL_CNF" "$TLS13_CIPHERS"
	fi
	TLS_PGBOUNCER_HAS_TLS13=0
	if command -v pgbouncer >/dev/null && grep -aq client_tls13_ciphers "$(command -v pgbouncer)"; then
		TLS_PGBOUNCER_HAS_TLS13=1
	fi
}

tls_ini() { # KIND (pgbouncer|pgring): the client_tls_* lines of its ini
	echo "client_tls_sslmode = $TLS_SSLMODE"
	echo "client_tls_key_file = $TLS_DIR/server.key"
	echo "client_tls_cert_file = $TLS_DIR/server.crt"
	echo "client_tls_ca_file = $TLS_DIR/ca.crt"
	[[ -n $TLS_PROTOCOLS ]] && echo "client_tls_protocols = $TLS_PROTOCOLS"
	[[ -n $TLS_CIPHERS ]] && echo "client_tls_ciphers = $TLS_CIPHERS"
	if [[ -n $TLS13_CIPHERS ]] && [[ $1 != pgbouncer || $TLS_PGBOUNCER_HAS_TLS13 == 1 ]]; then
		echo "client_tls13_ciphers = $TLS13_CIPHERS"
	fi
	return 0
}

tls_server_env() { # KIND: words for `env` before the pooler's command (may be none)
	if [[ $1 == pgbouncer && -n $TLS13_CIPHERS && $TLS_PGBOUNCER_HAS_TLS13 == 0 ]]; then
		echo "OPENSSL_CONF=$TLS_OPENSSL_CNF"
	fi
	return 0
}

tls_client_env() { # KIND: words for `env` before a libpq client (pgbench, psql) of KIND
	echo "PGSSLMODE=require"
	if [[ $1 == direct && -n $TLS13_CIPHERS ]]; then
		echo "OPENSSL_CONF=$TLS_OPENSSL_CNF"
	fi
	return 0
}

tls_pg_conf() { # postgresql.conf lines for a direct PostgreSQL with ssl = on
	printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\nssl_ca_file = '%s'\n" \
		"$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$TLS_DIR/ca.crt"
	[[ -n $TLS_CIPHERS ]] && printf "ssl_ciphers = '%s'\n" "$TLS_CIPHERS"
	return 0
}

tls_tlshs_args() { # KIND: extra tlshs/idleconns client options for KIND
	if [[ $1 == direct && -n $TLS13_CIPHERS ]]; then
		printf -- '--ciphers %s\n' "$(tls_wolfssl_names "$TLS13_CIPHERS")"
	fi
	return 0
}

# tls_libpq_cipher KIND PORT: "TLSv1.3 TLS_..." as libpq (psql \conninfo) negotiates it
tls_libpq_cipher() {
	local kind=$1 port=$2 out
	# shellcheck disable=SC2046
	out=$(env $(tls_client_env "$kind") PGPASSWORD=app PGCONNECT_TIMEOUT=5 timeout 10 \
		psql -X -h 127.0.0.1 -p "$port" -U app -d app -c '\conninfo' 2>&1) || true
	sed -n 's/.*SSL connection (protocol: \([^,]*\), cipher: \([^,]*\),.*/\1 \2/p' <<<"$out" | head -1
}
