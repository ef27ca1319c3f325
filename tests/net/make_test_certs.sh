#!/usr/bin/env bash
# Makes the TLS tests' PKI in directory $1 with the openssl CLI:
#   ca.pem/ca.key            the test CA ("corio test CA")
#   server.pem/.key          localhost, 127.0.0.1, ::1 — signed by the CA
#   a.pem, b.pem (+ .key)    a.test / b.test (SNI) — signed by the CA
#   wronghost.pem/.key       wrong.example — signed by the CA
#   expired.pem/.key         localhost, valid only in January 2020 — signed by the CA
#   selfsigned.pem/.key      localhost, self-signed
#   other_ca.pem, unknown.pem/.key   localhost signed by a CA nobody trusts
#   client.pem/.key          "corio client" (clientAuth) — signed by the CA
#   rsa.pem/.key             localhost with an RSA-2048 key (the benchmark's cert)
set -euo pipefail
d=$1
mkdir -p "$d"
cd "$d"
ossl() { openssl "$@" 2>/dev/null; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# A CA: name, subject.
make_ca() {
  key "$1.key"
  ossl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# A leaf: name, CN, SAN, CA name, [extended key usage].
make_leaf() {
  [[ -f "$1.key" ]] || key "$1.key"
  ossl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=%s\n' "$3" "${5:-serverAuth}" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -out "$1.pem" -days 30 -extfile "$1.ext"
}

make_ca ca "corio test CA"
make_ca other_ca "corio untrusted CA"
make_leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" ca
make_leaf a a.test "DNS:a.test" ca
make_leaf b b.test "DNS:b.test" ca
make_leaf wronghost wrong.example "DNS:wrong.example" ca
make_leaf unknown localhost "DNS:localhost,IP:127.0.0.1" other_ca
make_leaf client "corio client" "DNS:client.test" ca clientAuth
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
make_leaf rsa localhost "DNS:localhost,IP:127.0.0.1" ca

# Self-signed localhost.
key selfsigned.key
ossl req -x509 -new -key selfsigned.key -out selfsigned.pem -days 30 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1

# Expired: `openssl ca` is the CLI's way to set past validity dates.
key expired.key
ossl req -new -key expired.key -out expired.csr -subj /CN=localhost
mkdir -p ca_db
: > ca_db/index.txt
echo 1000 > ca_db/serial
cat > ca_db/ca.cnf <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = ca_db/index.txt
new_certs_dir = ca_db
serial = ca_db/serial
default_md = sha256
policy = any
copy_extensions = none
[ any ]
commonName = supplied
[ leaf ]
subjectAltName = DNS:localhost,IP:127.0.0.1
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
CNF
ossl ca -batch -config ca_db/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
  -startdate 20200101000000Z -enddate 20200201000000Z -extensions leaf -notext
# Chains for servers that present their CA too are not needed: the leaf alone is sent.
echo ok
