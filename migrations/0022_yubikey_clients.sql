-- Clients of the Yubico validation protocol (GET /ttype/yubikey, issue 14): privacyIDEA keeps
-- them as system config `yubikey.apiid.<id>` with the Base64 API key in the clear. Here each
-- client's key is sealed (AES-GCM under the HSM key `token-seal`, associated data naming the
-- client id, so a sealed key copied to another row does not open), and the table, which decides
-- whose requests are answered and with which key the answers are signed, is sealed as a whole
-- (table_seal 'yubikey_client'), like service_account.
CREATE TABLE yubikey_client (
    client_id   TEXT    PRIMARY KEY,
    sealed_key  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
