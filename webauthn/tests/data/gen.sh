#!/bin/sh
# Regenerates the fixed test certificates and keys (see README.md). Run once; the outputs are committed.
set -eu
AAGUID=000102030405060708090a0b0c0d0e0f
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.pem" && openssl pkcs8 -topk8 -nocrypt -in "$1.pem" -outform DER -out "$1.pk8" && rm "$1.pem"; }
ec root-key; ec other-root-key; ec leaf-key
cat > ext.cnf <<CNF
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
1.3.6.1.4.1.45724.1.1.4 = DER:04:10:$AAGUID
[leaf_no_ou]
basicConstraints = critical, CA:FALSE
CNF
openssl req -new -x509 -key root-key.pk8 -keyform DER -subj "/C=DE/O=Countersign Test/CN=Countersign Test Attestation Root" \
  -days 36500 -set_serial 1 -sha256 -extensions root -config ext.cnf -outform DER -out root.der
openssl req -new -x509 -key other-root-key.pk8 -keyform DER -subj "/C=DE/O=Someone Else/CN=Untrusted Root" \
  -days 36500 -set_serial 2 -sha256 -extensions root -config ext.cnf -outform DER -out other-root.der
openssl req -new -key leaf-key.pk8 -keyform DER -subj "/C=DE/O=Countersign Test/OU=Authenticator Attestation/CN=Countersign Test Authenticator" -out leaf.csr
openssl x509 -req -in leaf.csr -CA root.der -CAform DER -CAkey root-key.pk8 -CAkeyform DER -set_serial 10 \
  -days 36500 -sha256 -extfile ext.cnf -extensions leaf -outform DER -out leaf.der
openssl req -new -key leaf-key.pk8 -keyform DER -subj "/C=DE/O=Countersign Test/CN=No OU Authenticator" -out leaf-no-ou.csr
openssl x509 -req -in leaf-no-ou.csr -CA root.der -CAform DER -CAkey root-key.pk8 -CAkeyform DER -set_serial 11 \
  -days 36500 -sha256 -extfile ext.cnf -extensions leaf_no_ou -outform DER -out leaf-no-ou.der
openssl genrsa -traditional -out rsa-2048.pem 2048 2>/dev/null || openssl genrsa -out rsa-2048.pem 2048
openssl pkcs8 -topk8 -nocrypt -in rsa-2048.pem -outform DER -out rsa-2048.pk8 && rm rsa-2048.pem
rm -f leaf.csr leaf-no-ou.csr ext.cnf root-key.pk8 other-root-key.pk8
