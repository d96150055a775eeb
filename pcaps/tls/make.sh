#!/bin/bash
# make.sh - regenerate the SMTP-over-TLS captures in this directory.
#
# Run as root on Debian 12:   bash pcaps/tls/make.sh
# Only the captures derived from the committed ones (no root, no network):
#                              bash pcaps/tls/make.sh derive
#
# Every capture is real traffic between real TLS stacks (Postfix, aiosmtpd,
# OpenSSL via swaks / openssl s_client / Python, GnuTLS, the JDK) across a
# veth pair joining two network namespaces:
#
#   mxt-cli (10.26.0.1, veth mxt-c0)  <---->  mxt-srv (10.26.0.2, veth mxt-s0)
#
# Nothing else is routed from either namespace; all traffic stays on the pair.
# tcpdump records on the client's end of the pair.  The script makes its own
# PKI (see README.md), keeps only the public certificates under certs/, and
# removes its namespaces, processes and temporary files when it exits.
#
# Environment:
#   MXT_TLS_OUT   where to write the captures (default: this directory)
#   MXT_TLS_KEEP  set to 1 to keep the temporary work directory (debugging)

set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${MXT_TLS_OUT:-$HERE}
PY=/usr/bin/python3

CLI_NS=mxt-cli
SRV_NS=mxt-srv
CLI_IF=mxt-c0
SRV_IF=mxt-s0
CLI_IP=10.26.0.1
SRV_IP=10.26.0.2
SERVER_NAME=mail.testlab.example
EHLO_NAME=client.testlab.example
MAIL_FROM=alice@client.testlab.example
RCPT_TO=bob@testlab.example

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make.sh: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------------------
# derived captures: edited copies of real ones (degrade.py says how)
# --------------------------------------------------------------------------
derive() {
    log "derived captures"
    "$PY" "$HERE/degrade.py" cutrecord "$OUT/s7-smtps-465-tls12.pcap" "$OUT/s7-lost-client-bytes.pcap"
    "$PY" "$HERE/degrade.py" nosni "$OUT/s7-smtps-465-tls12.pcap" "$OUT/s7-smtps-465-no-sni.pcap"
}

if [ "${1:-}" = derive ]; then derive; exit 0; fi

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --------------------------------------------------------------------------
# 1. packages
# --------------------------------------------------------------------------
install_packages() {
    local want=(postfix swaks libnet-ssleay-perl libio-socket-ssl-perl tcpdump tshark
                python3 python3-aiosmtpd openssl gnutls-bin dnsmasq-base iproute2
                ethtool ca-certificates procps)
    if ! command -v javac >/dev/null || ! command -v java >/dev/null || ! command -v keytool >/dev/null; then
        want+=(default-jdk-headless ca-certificates-java)
    fi
    local missing=() p
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        # Postfix must not configure or start a system-wide instance.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        apt-get -o DPkg::Lock::Timeout=600 update -q
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
    local c
    for c in postconf postfix swaks tcpdump tshark openssl gnutls-cli dnsmasq ip ethtool javac java keytool; do
        command -v "$c" >/dev/null || die "missing command after install: $c"
    done
    "$PY" -c 'import aiosmtpd' || die "$PY cannot import aiosmtpd"
}

# --------------------------------------------------------------------------
# state and teardown
# --------------------------------------------------------------------------
WORK=
TCPDUMP_PID=
DNSMASQ_PID=
AIOSMTPD_PID=
PF_DIR=
NETNS_MADE=0

stop_pid() { # stop_pid PID SIGNAL - signal one process we started and reap it
    local pid=$1 sig=${2:-TERM} i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -s KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$TCPDUMP_PID" INT; TCPDUMP_PID=
    stop_pid "$AIOSMTPD_PID" TERM; AIOSMTPD_PID=
    pf_stop
    stop_pid "$DNSMASQ_PID" TERM; DNSMASQ_PID=
    if [ "$NETNS_MADE" = 1 ]; then
        local ns pid
        for ns in "$CLI_NS" "$SRV_NS"; do
            # anything still running inside our namespaces was started here
            for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" TERM; done
            ip netns del "$ns" 2>/dev/null
            rm -rf "/etc/netns/$ns"
        done
    fi
    if [ -n "$WORK" ] && [ "${MXT_TLS_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
    [ -n "$WORK" ] && [ "${MXT_TLS_KEEP:-0}" = 1 ] && log "work directory kept: $WORK"
    exit $rc
}

# --------------------------------------------------------------------------
# 2. network namespaces
# --------------------------------------------------------------------------
net_up() {
    local ns
    for ns in "$CLI_NS" "$SRV_NS"; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            die "network namespace $ns already exists (another run in progress?); remove it first"
        fi
    done
    NETNS_MADE=1
    ip netns add "$CLI_NS"
    ip netns add "$SRV_NS"
    ip link add "$CLI_IF" type veth peer name "$SRV_IF"
    ip link set "$CLI_IF" netns "$CLI_NS"
    ip link set "$SRV_IF" netns "$SRV_NS"
    local pair
    for pair in "$CLI_NS:$CLI_IF:$CLI_IP" "$SRV_NS:$SRV_IF:$SRV_IP"; do
        IFS=: read -r ns dev addr <<<"$pair"
        # IPv4 only: no router solicitations or MLD reports in the captures
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" mtu 1500
        ip -n "$ns" addr add "$addr/24" dev "$dev"
        ip -n "$ns" link set "$dev" up
        ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null
        # per-namespace resolver and hosts, bind-mounted by "ip netns exec"
        mkdir -p "/etc/netns/$ns"
        echo "nameserver $SRV_IP" >"/etc/netns/$ns/resolv.conf"
        printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$addr" \
            "$([ "$ns" = "$CLI_NS" ] && echo "$EHLO_NAME" || echo "$SERVER_NAME")" >"/etc/netns/$ns/hosts"
    done
    ip netns exec "$CLI_NS" ping -c 1 -W 2 "$SRV_IP" >/dev/null || die "veth pair does not pass traffic"
}

in_cli() { ip netns exec "$CLI_NS" "$@"; }
in_srv() { ip netns exec "$SRV_NS" "$@"; }

# --------------------------------------------------------------------------
# 3. PKI
# --------------------------------------------------------------------------
make_pki() {
    local d=$WORK/pki
    mkdir -p "$d/newcerts"
    : >"$d/index.txt"
    echo 1000 >"$d/serial"
    cat >"$d/ca.cnf" <<'EOF'
[ ca ]
default_ca = lab_ca
[ lab_ca ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = lab_policy
unique_subject = no
copy_extensions = none
preserve = yes
email_in_dn = no
[ lab_policy ]
organizationName = optional
commonName = supplied
[ root_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ intermediate_ext ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $ENV::MXT_SAN
EOF
    (
        cd "$d"
        export MXT_SAN=DNS:unused.invalid
        local k
        for k in root inter server expired mailc selfsigned; do
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k.key" 2>/dev/null
        done
        # Fixed validity windows, so that the certificates do not depend on the
        # clock of the machine that makes them (openssl ca takes explicit dates).
        local ca_from=20190101000000Z ok_from=20250101000000Z ok_to=20350101000000Z
        openssl req -new -key root.key -subj "/O=mxtrace test lab/CN=mxtrace Test Root CA" -out root.csr
        openssl ca -batch -config ca.cnf -selfsign -extensions root_ext -keyfile root.key \
            -startdate "$ca_from" -enddate 20440101000000Z -notext -in root.csr -out root.pem 2>/dev/null
        openssl req -new -key inter.key -subj "/O=mxtrace test lab/CN=mxtrace Test Intermediate CA" -out inter.csr
        openssl ca -batch -config ca.cnf -extensions intermediate_ext -cert root.pem -keyfile root.key \
            -startdate "$ca_from" -enddate 20390101000000Z -notext -in inter.csr -out inter.pem 2>/dev/null
        issue() { # issue KEY CN SAN OUT [openssl ca options...]
            local key=$1 cn=$2 san=$3 out=$4; shift 4
            openssl req -new -key "$key" -subj "/O=mxtrace test lab/CN=$cn" -out "$out.csr"
            MXT_SAN=$san openssl ca -batch -config ca.cnf -extensions server_ext -notext \
                -in "$out.csr" -out "$out" "$@" 2>/dev/null
        }
        local by_inter=(-cert inter.pem -keyfile inter.key)
        issue server.key "$SERVER_NAME" "DNS:$SERVER_NAME,DNS:relay.testlab.example" server.pem \
            "${by_inter[@]}" -startdate "$ok_from" -enddate "$ok_to"
        issue expired.key "$SERVER_NAME" "DNS:$SERVER_NAME,DNS:relay.testlab.example" expired.pem \
            "${by_inter[@]}" -startdate 20200101000000Z -enddate 20210101000000Z
        issue mailc.key mailC.example.com "DNS:mailC.example.com" mailc.pem \
            "${by_inter[@]}" -startdate "$ok_from" -enddate "$ok_to"
        # self-signed: subject = issuer = CN=mail.testlab.example, signed with its own key
        openssl req -new -key selfsigned.key -subj "/CN=$SERVER_NAME" -out selfsigned.csr
        MXT_SAN="DNS:$SERVER_NAME" openssl ca -batch -config ca.cnf -selfsign -extensions server_ext \
            -keyfile selfsigned.key -startdate "$ok_from" -enddate "$ok_to" -notext \
            -in selfsigned.csr -out selfsigned.pem 2>/dev/null
        # what the servers present: leaf first, then the intermediate
        cat server.pem inter.pem >server-chain.pem
        cat expired.pem inter.pem >expired-chain.pem
        cat mailc.pem inter.pem >mailc-chain.pem
        openssl verify -CAfile root.pem -untrusted inter.pem server.pem mailc.pem >/dev/null
        if openssl verify -CAfile root.pem -untrusted inter.pem expired.pem >/dev/null 2>&1; then
            echo "expired.pem unexpectedly verifies" >&2; exit 1
        fi
        # JDK trust store holding only the lab root
        keytool -importcert -noprompt -alias mxtrace-test-root -file root.pem \
            -keystore lab-trust.p12 -storetype PKCS12 -storepass changeit >/dev/null 2>&1
    )
    mkdir -p "$OUT/certs"
    cp "$d/root.pem" "$OUT/certs/root-ca.pem"
    cp "$d/inter.pem" "$OUT/certs/intermediate-ca.pem"
    cp "$d/server.pem" "$OUT/certs/mail.testlab.example.pem"
    cp "$d/expired.pem" "$OUT/certs/mail.testlab.example-expired.pem"
    cp "$d/mailc.pem" "$OUT/certs/mailC.example.com.pem"
    cp "$d/selfsigned.pem" "$OUT/certs/mail.testlab.example-selfsigned.pem"
}

# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------
start_dns() {
    # Answers only for the lab names (AAAA: no data; other names: NXDOMAIN);
    # no upstream servers.
    ip netns exec "$SRV_NS" dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
        --listen-address="$SRV_IP" --except-interface=lo --user=root --pid-file="$WORK/dnsmasq.pid" \
        --host-record="$SERVER_NAME,$SRV_IP" --host-record="relay.testlab.example,$SRV_IP" \
        --host-record="gvsvipa006.example.com,$SRV_IP" --host-record="mailC.example.com,$SRV_IP" \
        --local=/testlab.example/ --local=/example.com/ \
        --log-queries --log-facility="$WORK/dnsmasq.log" &
    DNSMASQ_PID=$!
    local i
    for i in $(seq 50); do
        in_cli getent ahostsv4 "$SERVER_NAME" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "dnsmasq does not answer"
}

# pf_start CHAIN KEY HOSTNAME [main.cf line]...
# A private Postfix instance (own config, queue and data directories) inside
# mxt-srv, listening on 25 (smtp), 587 (submission) and 465 (smtps).
pf_start() {
    local chain=$1 key=$2 host=$3; shift 3
    PF_DIR=$WORK/postfix
    mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/data"
    chown postfix "$PF_DIR/data"
    {
        cat <<EOF
compatibility_level = 3.6
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/data
maillog_file_prefixes = $PF_DIR
maillog_file = $PF_DIR/maillog
myhostname = $host
mydomain = testlab.example
myorigin = \$mydomain
mydestination = testlab.example, \$myhostname
inet_interfaces = $SRV_IP
inet_protocols = ipv4
mynetworks = 10.26.0.0/24, 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:message accepted by test sink
smtpd_peername_lookup = no
biff = no
smtpd_tls_security_level = may
smtpd_tls_chain_files = $key, $chain
smtpd_tls_loglevel = 1
EOF
        local line
        for line in "$@"; do echo "$line"; done
    } >"$PF_DIR/etc/main.cf"
    cat >"$PF_DIR/etc/master.cf" <<'EOF'
smtp       inet n - n - - smtpd
submission inet n - n - - smtpd -o syslog_name=postfix/submission -o smtpd_tls_security_level=encrypt
smtps      inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
pickup     unix n - n 60 1 pickup
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
tlsmgr     unix - - n 1000? 1 tlsmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
smtp-out   unix - - n - - smtp
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
    in_srv postfix -c "$PF_DIR/etc" start >>"$WORK/postfix-start.log" 2>&1 ||
        { cat "$PF_DIR/maillog" >&2 2>/dev/null; die "postfix did not start"; }
    local i
    for i in $(seq 100); do
        in_srv ss -Hltn "sport = :25" | grep -q LISTEN && in_srv ss -Hltn "sport = :465" | grep -q LISTEN && return 0
        sleep 0.1
    done
    die "postfix is not listening"
}

pf_stop() {
    [ -n "$PF_DIR" ] && [ -f "$PF_DIR/spool/pid/master.pid" ] || { PF_DIR=; return 0; }
    local pid
    pid=$(tr -dc 0-9 <"$PF_DIR/spool/pid/master.pid")
    in_srv postfix -c "$PF_DIR/etc" stop >>"$WORK/postfix-start.log" 2>&1 || true
    local i
    for i in $(seq 100); do
        { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || break
        sleep 0.1
    done
    { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } && in_srv postfix -c "$PF_DIR/etc" abort >/dev/null 2>&1
    rm -f "$PF_DIR/spool/pid/master.pid"
    PF_DIR=
}

# aio_start PORT MODE CHAIN KEY HOSTNAME - aiosmtpd sink inside mxt-srv
aio_start() {
    local port=$1 mode=$2 chain=$3 key=$4 host=$5
    ip netns exec "$SRV_NS" "$PY" "$HERE/src/aiosmtpd_tls_server.py" --address "$SRV_IP" --port "$port" \
        --mode "$mode" --cert "$chain" --key "$key" --hostname "$host" >>"$WORK/aiosmtpd.log" 2>&1 &
    AIOSMTPD_PID=$!
    local i
    for i in $(seq 100); do
        in_srv ss -Hltn "sport = :$port" | grep -q LISTEN && return 0
        kill -0 "$AIOSMTPD_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WORK/aiosmtpd.log" >&2
    die "aiosmtpd is not listening on $port"
}

aio_stop() { stop_pid "$AIOSMTPD_PID" TERM; AIOSMTPD_PID=; }

# --------------------------------------------------------------------------
# 4. capture
# --------------------------------------------------------------------------
cap_start() { # cap_start NAME
    CAP_NAME=$1
    rm -f "$WORK/$CAP_NAME" "$WORK/tcpdump.err"
    # background jobs of a non-interactive shell ignore SIGINT; tcpdump must not
    ip netns exec "$CLI_NS" env --default-signal=INT tcpdump -Z root -n -i "$CLI_IF" -w "$WORK/$CAP_NAME" 2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    local i
    for i in $(seq 100); do
        grep -q 'listening on' "$WORK/tcpdump.err" 2>/dev/null && return 0
        sleep 0.1
    done
    die "tcpdump did not start"
}

cap_stop() {
    sleep 1
    stop_pid "$TCPDUMP_PID" INT
    TCPDUMP_PID=
    grep -q 'packets captured' "$WORK/tcpdump.err" || die "tcpdump did not stop cleanly for $CAP_NAME"
    cp "$WORK/$CAP_NAME" "$OUT/$CAP_NAME"
    log "$CAP_NAME: $(stat -c %s "$OUT/$CAP_NAME") bytes"
}

# run_client EXPECTED_RC CMD... - run a client in mxt-cli and check its exit status
run_client() {
    local expect_rc=$1; shift
    local rc=0
    # own UTS namespace: the clients see the host name client.testlab.example
    # (listed in the namespace's hosts file), not the build machine's name
    echo "--- $*" >>"$WORK/clients.log"
    timeout 60 ip netns exec "$CLI_NS" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$EHLO_NAME" "$@" \
        >>"$WORK/clients.log" 2>&1 || rc=$?
    if [ "$rc" != "$expect_rc" ]; then
        tail -n 30 "$WORK/clients.log" >&2
        die "client exited with $rc, expected $expect_rc: $*"
    fi
}

SWAKS_MAIL=(--ehlo "$EHLO_NAME" --from "$MAIL_FROM" --to "$RCPT_TO"
            --header "Subject: mxtrace TLS capture" --body "Test message sent over TLS.")

# --------------------------------------------------------------------------
# the captures
# --------------------------------------------------------------------------
make_captures() {
    local P=$WORK/pki
    local trust=(-Djavax.net.ssl.trustStore="$P/lab-trust.p12" -Djavax.net.ssl.trustStorePassword=changeit
                 -Djavax.net.ssl.trustStoreType=PKCS12)

    # --- Postfix with the good chain (mail.testlab.example) ---------------
    pf_start "$P/server-chain.pem" "$P/server.key" "$SERVER_NAME"

    cap_start s2-starttls-tls12.pcap   # name looked up through DNS first
    run_client 0 swaks --server "$SERVER_NAME" --port 25 "${SWAKS_MAIL[@]}" \
        --tls --tls-protocol tlsv1_2 --tls-cipher ECDHE-RSA-AES256-GCM-SHA384 \
        --tls-verify --tls-ca-path "$P/root.pem" --tls-sni "$SERVER_NAME"
    cap_stop

    cap_start starttls-tls13.pcap
    run_client 0 swaks --server "$SERVER_NAME" --port 25 "${SWAKS_MAIL[@]}" \
        --tls --tls-protocol tlsv1_3 \
        --tls-verify --tls-ca-path "$P/root.pem" --tls-sni "$SERVER_NAME"
    cap_stop

    cap_start s7-smtps-465-tls12.pcap
    run_client 0 swaks --server "$SRV_IP" --port 465 "${SWAKS_MAIL[@]}" \
        --tls-on-connect --tls-protocol tlsv1_2 \
        --tls-verify --tls-ca-path "$P/root.pem" --tls-sni "$SERVER_NAME"
    cap_stop

    cap_start s3-java-certificate-unknown.pcap   # JDK default trust store
    run_client 2 java -cp "$WORK/java" StartTlsProbe "$SRV_IP" 587 "$SERVER_NAME" "$EHLO_NAME" TLSv1.2
    cap_stop

    cap_start s3-openssl-unknown-ca.pcap   # OpenSSL default CA store
    run_client 29 swaks --server "$SRV_IP" --port 25 "${SWAKS_MAIL[@]}" \
        --tls --tls-protocol tlsv1_2 --tls-verify --tls-sni "$SERVER_NAME"
    cap_stop

    cap_start s3-gnutls-bad-certificate.pcap   # GnuTLS system trust store
    run_client 1 gnutls-cli --starttls-proto=smtp --port 25 --sni-hostname "$SERVER_NAME" \
        --verify-hostname "$SERVER_NAME" --priority NORMAL:-VERS-ALL:+VERS-TLS1.2 "$SRV_IP" </dev/null
    cap_stop

    cap_start tls13-rejected.pcap   # JDK, TLS 1.3: the alert goes out encrypted
    run_client 2 java -cp "$WORK/java" StartTlsProbe "$SRV_IP" 25 "$SERVER_NAME" "$EHLO_NAME" TLSv1.3
    cap_stop
    pf_stop

    # --- Postfix that refuses every AES-GCM suite ------------------------
    pf_start "$P/server-chain.pem" "$P/server.key" "$SERVER_NAME" \
        "smtpd_tls_exclude_ciphers = AESGCM" "smtpd_tls_protocols = >=TLSv1.2"
    cap_start s9-no-shared-cipher.pcap
    run_client 2 "$PY" "$HERE/src/smtp_tls_client.py" --host "$SERVER_NAME" --address "$SRV_IP" \
        --port 25 --mode starttls --tls 1.2 --cafile "$P/root.pem" \
        --ciphers 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256'
    cap_stop
    pf_stop

    # --- Postfix with the expired chain ----------------------------------
    pf_start "$P/expired-chain.pem" "$P/expired.key" "$SERVER_NAME"
    cap_start expired-cert.pcap   # JDK trusting the lab root
    run_client 2 java "${trust[@]}" -cp "$WORK/java" StartTlsProbe "$SRV_IP" 25 "$SERVER_NAME" "$EHLO_NAME" TLSv1.2
    cap_stop
    pf_stop

    # --- Postfix as mailC.example.com ------------------------------------
    pf_start "$P/mailc-chain.pem" "$P/mailc.key" mailC.example.com
    cap_start s12-name-mismatch.pcap   # name resolved through DNS, then checked
    run_client 2 "$PY" "$HERE/src/smtp_tls_client.py" --host gvsvipa006.example.com \
        --port 25 --mode starttls --tls 1.2 --cafile "$P/root.pem"
    cap_stop
    pf_stop

    # --- aiosmtpd, implicit TLS on 465 with the good chain ---------------
    aio_start 465 implicit "$P/server-chain.pem" "$P/server.key" "$SERVER_NAME"
    cap_start smtps-465-tls13.pcap
    run_client 0 "$PY" "$HERE/src/smtp_tls_client.py" --host "$SERVER_NAME" --address "$SRV_IP" \
        --port 465 --mode implicit --tls 1.3 --cafile "$P/root.pem"
    cap_stop
    aio_stop

    # --- aiosmtpd, STARTTLS on 25 with a self-signed certificate ---------
    aio_start 25 starttls "$P/selfsigned.pem" "$P/selfsigned.key" "$SERVER_NAME"
    cap_start self-signed.pcap
    run_client 1 openssl s_client -connect "$SRV_IP:25" -starttls smtp -name "$EHLO_NAME" \
        -servername "$SERVER_NAME" -verify_hostname "$SERVER_NAME" -CAfile "$P/root.pem" \
        -tls1_2 -verify_return_error </dev/null
    cap_stop

    cap_start starttls-tls12-noverify-selfsigned-ok.pcap
    run_client 0 swaks --server "$SRV_IP" --port 25 "${SWAKS_MAIL[@]}" \
        --tls --tls-protocol tlsv1_2 --tls-sni "$SERVER_NAME"
    cap_stop
    aio_stop
}

# --------------------------------------------------------------------------
# self-check with tshark: TLS versions and alerts as the dissectors see them
# --------------------------------------------------------------------------
# expected: FILE  NEGOTIATED-VERSION  ALERTS (in order, "-" = none): SENDER:LEVEL:DESCRIPTION
# for alerts in clear, SENDER:enc for an encrypted TLS 1.2 alert (close_notify at the end
# of a session).  TLS 1.3 encrypted alerts are opaque records and are not listed.
EXPECT="
s2-starttls-tls12.pcap                     0x0303 $SRV_IP:enc
starttls-tls13.pcap                        0x0304 -
s7-smtps-465-tls12.pcap                    0x0303 $SRV_IP:enc
smtps-465-tls13.pcap                       0x0304 -
s3-java-certificate-unknown.pcap           0x0303 $CLI_IP:2:46
s3-openssl-unknown-ca.pcap                 0x0303 $CLI_IP:2:48
s3-gnutls-bad-certificate.pcap             0x0303 $CLI_IP:2:42
expired-cert.pcap                          0x0303 $CLI_IP:2:45
tls13-rejected.pcap                        0x0304 -
s9-no-shared-cipher.pcap                   -      $SRV_IP:2:40
s12-name-mismatch.pcap                     0x0303 $CLI_IP:2:42
self-signed.pcap                           0x0303 $CLI_IP:2:48
starttls-tls12-noverify-selfsigned-ok.pcap 0x0303 $SRV_IP:enc
s7-lost-client-bytes.pcap                  0x0303 $SRV_IP:enc
s7-smtps-465-no-sni.pcap                   0x0303 $SRV_IP:enc
"

TSHARK_DECODE=(-d tcp.port==587,smtp -d tcp.port==465,tls)

check_captures() {
    local bad=0 f ver alerts got_ver got_alerts size
    while read -r f ver alerts; do
        [ -n "$f" ] || continue
        size=$(stat -c %s "$OUT/$f")
        [ "$size" -lt 204800 ] || { echo "FAIL $f: $size bytes" >&2; bad=1; }
        # negotiated version: ServerHello's supported_versions, else its version field
        got_ver=$(tshark -r "$OUT/$f" -n "${TSHARK_DECODE[@]}" -Y 'tls.handshake.type == 2' -T fields \
            -e tls.handshake.extensions.supported_version -e tls.handshake.version 2>/dev/null |
            awk -F'\t' '{print ($1 != "" ? $1 : $2)}' | head -n 1)
        got_ver=${got_ver:--}
        got_alerts=$(tshark -r "$OUT/$f" -n "${TSHARK_DECODE[@]}" -Y tls.alert_message -T fields \
            -E occurrence=f -e ip.src -e tls.alert_message.level -e tls.alert_message.desc 2>/dev/null |
            awk -F'\t' '{printf "%s%s:%s", (NR > 1 ? "," : ""), $1, ($2 == "" ? "enc" : $2 ":" $3)}')
        got_alerts=${got_alerts:--}
        if [ "$got_ver" = "$ver" ] && [ "$got_alerts" = "$alerts" ]; then
            printf 'ok   %-44s version %s alerts %s\n' "$f" "$got_ver" "$got_alerts" >&2
        else
            printf 'FAIL %-44s version %s (want %s) alerts %s (want %s)\n' \
                "$f" "$got_ver" "$ver" "$got_alerts" "$alerts" >&2
            bad=1
        fi
    done <<<"$EXPECT"
    return $bad
}

# --------------------------------------------------------------------------
main() {
    install_packages
    WORK=$(mktemp -d /tmp/mxt-tls.XXXXXX)
    chmod 0755 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$OUT" "$WORK/java"
    javac -d "$WORK/java" "$HERE/src/StartTlsProbe.java"
    make_pki
    net_up
    start_dns
    make_captures
    # Postfix decrypts and logs the alerts it receives, including the one that
    # is encrypted in tls13-rejected.pcap (TLS 1.3)
    log "alerts received by Postfix, from its log:"
    grep -o 'postfix/[a-z]*/*smtpd.*alert number [0-9]*' "$WORK/postfix/maillog" | sed 's/^/   /' >&2 || true
    derive
    check_captures || die "capture check failed"
    log "done"
}

main "$@"
