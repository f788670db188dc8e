#!/usr/bin/env python3
"""Records the transcripts in this folder: the real privacyIDEA (the release installed in
``.tools/privacyidea``) answering ``tests/tools/push_phone.py`` and the push token's client
requests. Set up as ``tests/src/privacyidea.rs`` sets it up (pi.cfg, ``pi-manage setup`` and
``admin add``, ``pi-manage run`` on 127.0.0.1), in a fresh temporary directory.

    /usr/bin/python3 tests/tools/push_reference/record.py [--out DIR] [--keep]

Each exchange becomes ``NN_name.json``: ``request`` (method, path, params; ``auth`` says whether
the admin's session token was sent), ``http_status``, ``response`` (the full JSON), and for the
phone's exchanges ``phone`` (its command line and what it computed: signed message, challenge
verification). Volatile values (times, ids, keys, signatures, nonces, serials, transaction ids)
are left as recorded; README.md lists them. It takes about three minutes (two waits on
``push_wait`` and one past the enrolment TTL).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PI_BIN = os.path.join(REPO, ".tools", "privacyidea", "bin")
PHONE = os.path.join(HERE, "..", "push_phone.py")
ADMIN = ("admin", "admin-password-0")
PASSWD = "alice:x:1000:1000:alice,,,:/home/alice:/bin/sh\nbob:x:1001:1001:bob,,,:/home/bob:/bin/sh\n"
PIN = "pushpin"
KEY_BITS = "2048"  # the app's is 4096; the protocol is the same and recording is faster


class Recorder:
    def __init__(self, out_dir, port):
        self.out = out_dir
        self.port = port
        self.n = 0
        self.auth = None

    def write(self, name, description, transcript):
        self.n += 1
        fname = f"{self.n:02d}_{name}.json"
        body = {"name": name, "description": description}
        body.update(transcript)
        with open(os.path.join(self.out, fname), "w", encoding="utf-8") as f:
            json.dump(body, f, indent=2, sort_keys=False, ensure_ascii=False)
            f.write("\n")
        status = transcript.get("http_status")
        res = (transcript.get("response") or {}).get("result", {})
        print(f"{fname}: HTTP {status} status={res.get('status')} value={str(res.get('value'))[:60]}"
              f" err={(res.get('error') or {}).get('code')}", flush=True)

    def http(self, method, path, params, auth=False):
        encoded = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}{path}"
        if method == "GET":
            req = urllib.request.Request(url + ("?" + encoded if encoded else ""), method="GET")
        else:
            req = urllib.request.Request(url, data=encoded.encode(), method=method)
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if auth:
            req.add_header("Authorization", self.auth)
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        elapsed = round(time.monotonic() - t0, 2)
        try:
            js = json.loads(body)
        except json.JSONDecodeError:
            js = {"_not_json": body.decode("utf-8", "replace")}
        return status, js, elapsed

    def call(self, name, description, method, path, params, auth=False, record=True):
        status, js, elapsed = self.http(method, path, params, auth)
        if record:
            self.write(name, description, {
                "request": {"method": method, "path": path, "params": params, "auth": auth,
                            "content_type": None if method == "GET"
                            else "application/x-www-form-urlencoded"},
                "http_status": status, "elapsed_seconds": elapsed, "response": js})
        return status, js

    def admin(self, method, path, params):
        status, js = self.call("", "", method, path, params, auth=True, record=False)
        if status != 200 or js.get("result", {}).get("status") is not True:
            raise SystemExit(f"admin {method} {path} {params}: {status} {js}")
        return js

    def phone(self, name, description, args, expect=None):
        cmd = [sys.executable, PHONE] + args
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode == 2 or not p.stdout.strip():
            raise SystemExit(f"phone {args}: exit {p.returncode}: {p.stderr}")
        out = json.loads(p.stdout)
        req = out.pop("request")
        parts = urllib.parse.urlsplit(req["url"])
        phone_info = {"argv": ["push_phone.py"] + [a if len(a) < 200 else a[:60] + "..." for a in args],
                      "exit_status": p.returncode, "stderr": p.stderr.strip()}
        for k in ("signed_message", "forged", "challenges"):
            if k in out:
                phone_info[k] = out[k]
        self.write(name, description, {
            "request": {"method": req["method"], "path": parts.path, "params": req["params"],
                        "auth": False, "content_type": None if req["method"] == "GET"
                        else "application/x-www-form-urlencoded"},
            "http_status": out["http_status"], "response": out.get("response"),
            "phone": phone_info})
        if expect is not None and p.returncode != expect:
            print(f"  !! phone exit {p.returncode}, expected {expect}: {p.stderr.strip()}")
        return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_pi(d):
    cfg = os.path.join(d, "pi.cfg")
    with open(cfg, "w") as f:
        f.write(
            f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{d}/pi.sqlite'\n"
            "SECRET_KEY = 'conformance-secret-key-0123456789abcdef'\n"
            "PI_PEPPER = 'conformance-pepper-0123456789'\n"
            f"PI_ENCFILE = '{d}/enckey'\n"
            f"PI_AUDIT_KEY_PRIVATE = '{d}/private.pem'\n"
            f"PI_AUDIT_KEY_PUBLIC = '{d}/public.pem'\n"
            f"PI_LOGFILE = '{d}/pi.log'\n"
            "PI_LOGLEVEL = 30\n")
    env = dict(os.environ, PRIVACYIDEA_CONFIGFILE=cfg)
    manage = os.path.join(PI_BIN, "pi-manage")
    for args in (["setup", "create_enckey"], ["setup", "create_audit_keys"],
                 ["setup", "create_tables"], ["admin", "add", ADMIN[0], "-p", ADMIN[1]]):
        subprocess.run([manage] + args, env=env, cwd=d, check=True, capture_output=True)
    port = free_port()
    log = open(os.path.join(d, "server.log"), "w")
    child = subprocess.Popen([manage, "run", "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=d,
                             stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        child.kill()
        raise SystemExit("privacyIDEA did not start")
    return child, port


def first_nonce(out):
    ch = out.get("challenges") or []
    if not ch:
        raise SystemExit(f"no challenge in poll: {out}")
    return ch[0]["nonce"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--keep", action="store_true", help="keep the privacyIDEA directory")
    ap.add_argument("--skip-slow", action="store_true", help="no TTL wait, short push_wait")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="pi-push-")
    child, port = start_pi(d)
    try:
        run(args, d, port)
    finally:
        child.kill()
        child.wait()
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"privacyIDEA directory kept: {d}")


def run(args, d, port):
    for f in os.listdir(args.out):
        if f.endswith(".json") and f[:2].isdigit():
            os.unlink(os.path.join(args.out, f))
    rec = Recorder(args.out, port)
    status, js, _ = rec.http("POST", "/auth", {"username": ADMIN[0], "password": ADMIN[1]})
    rec.auth = js["result"]["value"]["token"]
    reg_url = f"http://127.0.0.1:{port}/ttype/push"
    passwd = os.path.join(d, "passwd")
    with open(passwd, "w") as f:
        f.write(PASSWD)
    rec.admin("POST", "/resolver/files", {"type": "passwdresolver", "fileName": passwd})
    rec.admin("POST", "/realm/test", {"resolvers": "files"})
    # The policies, recorded once so the transcripts say exactly what was set.
    rec.call("policy_enrollment", "Enrollment policy for push (admin).", "POST", "/policy/push-enrol",
             {"realm": "test", "scope": "enrollment", "active": "true",
              "action": f"push_registration_url={reg_url}, push_firebase_configuration=poll only, "
                        "push_ttl=1, push_ssl_verify=0"}, auth=True)
    rec.call("policy_auth", "Authentication policy for push (admin).", "POST", "/policy/push-auth",
             {"realm": "test", "scope": "authentication", "active": "true",
              "action": "push_allow_polling=allow, push_text_on_mobile=Log in as {user}?, "
                        "push_title_on_mobile=Countersign test"}, auth=True)

    phone = os.path.join(d, "phone.json")
    # ---- Enrolment ----
    status, js = rec.call("token_init_push", "First enrolment step: /token/init type=push genkey=1 "
                          "for alice with a PIN (admin). Policies: push_registration_url, "
                          "push_firebase_configuration=poll only, push_ttl=1, push_ssl_verify=0.",
                          "POST", "/token/init",
                          {"type": "push", "genkey": "1", "user": "alice", "realm": "test",
                           "pin": PIN}, auth=True)
    uri, serial = js["detail"]["pushurl"]["value"], js["detail"]["serial"]
    rec.call("token_list_clientwait", "GET /token/?serial= of the push token waiting for the phone.",
             "GET", "/token/", {"serial": serial}, auth=True)
    # A wrong enrollment credential first: the token stays in clientwait.
    good_cred = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["enrollment_credential"][0]
    bad_uri = uri.replace(good_cred, "00" * 20)
    rec.phone("enrol_wrong_credential", "Second step with a wrong enrollment_credential.",
              ["enrol", "--uri", bad_uri, "--state", os.path.join(d, "bad.json"),
               "--key-bits", KEY_BITS], expect=1)
    rec.phone("enrol_second_step", "Second enrolment step by the phone (poll only: the app's "
              "fbtoken 'no_firebase_token').",
              ["enrol", "--uri", uri, "--state", phone, "--key-bits", KEY_BITS], expect=0)
    rec.phone("enrol_second_step_again", "The same second step again (token is enrolled now).",
              ["enrol", "--uri", uri, "--state", os.path.join(d, "again.json"),
               "--key-bits", KEY_BITS], expect=1)
    rec.call("token_list_enrolled", "GET /token/?serial= of the enrolled push token.",
             "GET", "/token/", {"serial": serial}, auth=True)

    # ---- Poll with no challenge, stale/future timestamps, wrong serial, forged ----
    rec.phone("poll_empty", "Poll with no open challenge.", ["poll", "--state", phone], expect=0)
    rec.phone("poll_stale_timestamp", "Poll with a timestamp 90 s in the past (window is 1 min).",
              ["poll", "--state", phone, "--skew-seconds", "-90"], expect=1)
    rec.phone("poll_future_timestamp", "Poll with a timestamp 90 s in the future.",
              ["poll", "--state", phone, "--skew-seconds", "90"], expect=1)
    rec.phone("poll_bad_timestamp", "Poll with a timestamp that is not ISO 8601.",
              ["poll", "--state", phone, "--timestamp", "yesterday"], expect=1)
    rec.phone("poll_forged", "Poll signed by another key.", ["poll", "--state", phone, "--forge"],
              expect=1)
    rec.phone("poll_unknown_serial", "Poll for a serial that does not exist (signed by the phone).",
              ["poll", "--state", phone, "--serial-override", "PIPU0000DEAD"], expect=1)
    status, js = rec.call("poll_missing_signature", "Poll without signature.", "GET", "/ttype/push",
                          {"serial": serial, "timestamp": "2020-01-01T00:00:00.000Z"})

    # ---- Login: PIN-only check triggers a push challenge; accept ----
    status, js = rec.call("validate_check_pin", "PIN-only /validate/check triggers the push challenge.",
                          "POST", "/validate/check", {"user": "alice", "realm": "test", "pass": PIN})
    tx = js["detail"]["transaction_id"]
    rec.call("polltransaction_pending", "/validate/polltransaction before the phone answered.",
             "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.call("validate_check_empty_pending", "/validate/check with empty pass and the transaction "
             "id before the phone answered.", "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})
    out = rec.phone("poll_one_challenge", "Poll with one open challenge.", ["poll", "--state", phone],
                    expect=0)
    nonce = first_nonce(out)
    rec.phone("answer_forged", "Answer signed by another key (a forged phone).",
              ["answer", "--state", phone, "--nonce", nonce, "--forge"], expect=1)
    rec.phone("answer_wrong_nonce", "Answer for a nonce that does not exist.",
              ["answer", "--state", phone, "--nonce", "A" * 52], expect=1)
    rec.phone("answer_other_serial", "Answer sent with another (unknown) serial, signed over it.",
              ["answer", "--state", phone, "--nonce", nonce, "--serial-override", "PIPU0000DEAD"],
              expect=1)
    status, js = rec.call("answer_missing_signature", "Answer without signature.", "POST",
                          "/ttype/push", {"serial": serial, "nonce": nonce})
    rec.phone("answer_accept", "The phone accepts.", ["answer", "--state", phone, "--nonce", nonce],
              expect=0)
    rec.call("polltransaction_accept", "/validate/polltransaction after accept.",
             "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.phone("poll_after_accept", "Poll after accepting (the answered challenge is gone).",
              ["poll", "--state", phone], expect=0)
    rec.phone("answer_replay_before_finalise", "The same accept again before the login finalised.",
              ["answer", "--state", phone, "--nonce", nonce], expect=None)
    rec.call("validate_check_empty_accept", "Finalise: /validate/check with empty pass and the "
             "transaction id after accept.", "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})
    rec.call("polltransaction_after_finalise", "/validate/polltransaction after the login finalised.",
             "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.phone("answer_replay_after_finalise", "The same accept again after the login finalised.",
              ["answer", "--state", phone, "--nonce", nonce], expect=None)
    rec.call("validate_check_empty_again", "Finalise the same transaction a second time.",
             "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})
    rec.call("polltransaction_unknown", "/validate/polltransaction for an unknown transaction id.",
             "GET", "/validate/polltransaction", {"transaction_id": "12345678901234567890"})
    rec.call("polltransaction_missing", "/validate/polltransaction without transaction id.",
             "GET", "/validate/polltransaction", {})

    # ---- Decline ----
    status, js = rec.call("validate_triggerchallenge", "/validate/triggerchallenge for alice (admin).",
                          "POST", "/validate/triggerchallenge", {"user": "alice", "realm": "test"},
                          auth=True)
    tx = js["detail"]["transaction_id"]
    out = rec.phone("poll_for_decline", "Poll: the triggered challenge.", ["poll", "--state", phone],
                    expect=0)
    nonce = first_nonce(out)
    rec.phone("answer_decline_with_reason", "Decline as newer apps do, with decline_reason "
              "(signed '|decline|cancelled'): privacyIDEA 3.11.4 does not know it.",
              ["answer", "--state", phone, "--nonce", nonce, "--decline", "--decline-reason",
               "cancelled"], expect=None)
    rec.phone("answer_decline", "The phone declines.",
              ["answer", "--state", phone, "--nonce", nonce, "--decline"], expect=0)
    rec.call("polltransaction_declined", "/validate/polltransaction after decline.",
             "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.phone("poll_after_decline", "Poll after declining (declined challenges are not sent).",
              ["poll", "--state", phone], expect=0)
    rec.call("validate_check_empty_declined", "Finalise after decline: /validate/check with empty "
             "pass and the transaction id.", "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})
    rec.phone("answer_accept_after_decline", "The phone accepts the challenge it declined.",
              ["answer", "--state", phone, "--nonce", nonce], expect=None)
    rec.call("polltransaction_accept_after_decline", "/validate/polltransaction after the phone "
             "accepted the challenge it had declined.",
             "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.call("validate_check_empty_accept_after_decline", "Finalise after decline then accept.",
             "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})

    # ---- Firebase token update ----
    rec.phone("update_fbtoken", "The app's Firebase-token update.",
              ["update-fbtoken", "--state", phone, "--new", "new-firebase-token-1"], expect=0)
    rec.phone("update_fbtoken_forged", "Firebase-token update signed by another key.",
              ["update-fbtoken", "--state", phone, "--new", "new-firebase-token-2", "--forge"],
              expect=1)
    rec.phone("update_fbtoken_stale", "Firebase-token update with a timestamp 6 minutes old "
              "(window 5 min).",
              ["update-fbtoken", "--state", phone, "--new", "new-firebase-token-3",
               "--skew-seconds", "-360"], expect=1)
    rec.call("token_list_after_fbtoken", "GET /token/?serial= after the Firebase-token update.",
             "GET", "/token/", {"serial": serial}, auth=True)

    # ---- Presence (number matching) ----
    rec.call("policy_require_presence", "Authentication policy push_require_presence (admin).",
             "POST", "/policy/push-presence",
             {"realm": "test", "scope": "authentication", "active": "true", "action": "push_require_presence=1"},
             auth=True)
    status, js = rec.call("validate_check_pin_presence", "PIN-only /validate/check with "
                          "push_require_presence: the answer to press is in the reply.",
                          "POST", "/validate/check", {"user": "alice", "realm": "test", "pass": PIN})
    tx = js["detail"]["transaction_id"]
    correct = None
    for c in js["detail"].get("multi_challenge", []):
        correct = c.get("presence_answer") or correct
    correct = correct or js["detail"].get("presence_answer")
    out = rec.phone("poll_presence", "Poll: a challenge with require_presence (version 2).",
                    ["poll", "--state", phone], expect=0)
    nonce = first_nonce(out)
    options = out["challenges"][0].get("presence_options") or []
    wrong = next((o for o in options if o != correct), "ZZ")
    rec.phone("answer_presence_wrong", "Number matching: the wrong option.",
              ["answer", "--state", phone, "--nonce", nonce, "--presence", wrong], expect=1)
    rec.call("polltransaction_presence_wrong", "/validate/polltransaction after a wrong option.",
             "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.phone("answer_presence_missing", "Number matching: accept without presence_answer.",
              ["answer", "--state", phone, "--nonce", nonce], expect=None)
    rec.call("polltransaction_presence_missing", "/validate/polltransaction after an accept "
             "without presence_answer.", "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.call("validate_check_empty_presence_missing", "Finalise after the accept without "
             "presence_answer.", "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})
    # A fresh challenge for the correct answer.
    status, js = rec.call("validate_check_pin_presence_2", "PIN-only /validate/check with "
                          "push_require_presence again.", "POST", "/validate/check",
                          {"user": "alice", "realm": "test", "pass": PIN})
    tx = js["detail"]["transaction_id"]
    correct = next((c.get("presence_answer") for c in js["detail"].get("multi_challenge", [])
                    if c.get("presence_answer")), js["detail"].get("presence_answer"))
    out = rec.phone("poll_presence_2", "Poll: the new challenge with require_presence.",
                    ["poll", "--state", phone], expect=0)
    nonce = next(c["nonce"] for c in out["challenges"]
                 if c.get("require_presence", "").split(",")[-1:] != [None]
                 and correct in c.get("presence_options", []))
    rec.phone("answer_presence_correct", "Number matching: the correct option.",
              ["answer", "--state", phone, "--nonce", nonce, "--presence", correct], expect=0)
    rec.call("polltransaction_presence_correct", "/validate/polltransaction after the correct "
             "option.", "GET", "/validate/polltransaction", {"transaction_id": tx})
    rec.call("validate_check_empty_presence", "Finalise after the correct option.",
             "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": "", "transaction_id": tx})
    rec.admin("DELETE", "/policy/push-presence", {})

    # ---- push_wait ----
    wait = 4 if args.skip_slow else 10
    rec.call("policy_push_wait", f"Authentication policy push_wait={wait} (admin).",
             "POST", "/policy/push-wait",
             {"realm": "test", "scope": "authentication", "active": "true", "action": f"push_wait={wait}"},
             auth=True)
    holder = {}

    def tap():
        time.sleep(3)
        for _ in range(10):
            o = rec_phone_quiet(phone)
            if o.get("challenges"):
                holder["poll"] = o
                n = o["challenges"][0]["nonce"]
                holder["answer"] = subprocess.run(
                    [sys.executable, PHONE, "answer", "--state", phone, "--nonce", n],
                    capture_output=True, text=True).stdout
                holder["tapped_at"] = time.monotonic()
                return
            time.sleep(0.5)

    t = threading.Thread(target=tap)
    t0 = time.monotonic()
    t.start()
    rec.call("validate_check_push_wait_tap", f"PIN-only /validate/check with push_wait={wait}: the "
             "phone polls and accepts about 3 s later, while the check blocks.",
             "POST", "/validate/check", {"user": "alice", "realm": "test", "pass": PIN})
    t.join()
    if "tapped_at" in holder:
        print(f"  push_wait: tapped {holder['tapped_at'] - t0:.1f}s after the check started")
    rec.call("validate_check_push_wait_timeout", f"PIN-only /validate/check with push_wait={wait} "
             "and no tap: it blocks for the whole wait.", "POST", "/validate/check",
             {"user": "alice", "realm": "test", "pass": PIN})
    rec.phone("poll_after_push_wait", "Poll after the push_wait timeout (its challenge is open).",
              ["poll", "--state", phone], expect=0)
    rec.admin("DELETE", "/policy/push-wait", {})

    # ---- Polling denied ----
    rec.admin("POST", "/policy/push-auth", {
        "realm": "test", "scope": "authentication", "active": "true",
        "action": "push_allow_polling=deny, push_text_on_mobile=Log in as {user}?, "
                  "push_title_on_mobile=Countersign test"})
    rec.phone("poll_denied", "Poll with push_allow_polling=deny.", ["poll", "--state", phone],
              expect=1)
    rec.admin("POST", "/policy/push-auth", {
        "realm": "test", "scope": "authentication", "active": "true",
        "action": "push_allow_polling=allow, push_text_on_mobile=Log in as {user}?, "
                  "push_title_on_mobile=Countersign test"})

    # ---- Enrolment after the TTL (push_ttl=1 minute) ----
    status, js = rec.call("token_init_push_ttl", "First step of a second push token for bob, for "
                          "the TTL case (push_ttl=1).", "POST", "/token/init",
                          {"type": "push", "genkey": "1", "user": "bob", "realm": "test"},
                          auth=True)
    uri2 = js["detail"]["pushurl"]["value"]
    if not args.skip_slow:
        print("  waiting 75 s past the one-minute TTL ...", flush=True)
        time.sleep(75)
        rec.phone("enrol_after_ttl", "Second step 75 s after the first, with push_ttl=1 (minute).",
                  ["enrol", "--uri", uri2, "--state", os.path.join(d, "bob.json"),
                   "--key-bits", KEY_BITS, "--fbtoken", ""], expect=None)
    else:
        rec.phone("enrol_empty_fbtoken", "Second step with an empty fbtoken.",
                  ["enrol", "--uri", uri2, "--state", os.path.join(d, "bob.json"),
                   "--key-bits", KEY_BITS, "--fbtoken", ""], expect=None)
    rec.call("token_list_bob", "GET /token/?serial= of bob's push token (enrolled with an empty "
             "fbtoken).", "GET", "/token/",
             {"serial": js["detail"]["serial"]}, auth=True)


def rec_phone_quiet(state):
    p = subprocess.run([sys.executable, PHONE, "poll", "--state", state, "--no-verify"],
                       capture_output=True, text=True)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {}


if __name__ == "__main__":
    main()
