#!/usr/bin/python3
"""Independent PKCS#11 client (PyKCS11) for the key-custody test.

Usage: read_key_value.py MODULE TOKEN_LABEL PIN KEY_ID_HEX
Logs in, finds the private key with that CKA_ID and tries to read CKA_VALUE (and, for EC keys,
nothing else that would reveal the private scalar). Prints one JSON line with the key's
CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE flags and whether reading the value failed.
"""
import json
import sys

import PyKCS11
from PyKCS11 import LowLevel as LL

module, label, pin, key_id = sys.argv[1:5]
lib = PyKCS11.PyKCS11Lib()
lib.load(module)
slot = next(s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == label)
session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
session.login(pin)
objs = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_ID, bytes.fromhex(key_id))])
if len(objs) != 1:
    print(json.dumps({"found": len(objs)}))
    sys.exit(0)
key = objs[0]
flags = session.getAttributeValue(key, [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE, PyKCS11.CKA_NEVER_EXTRACTABLE])
value_error = None
try:
    value = session.getAttributeValue(key, [PyKCS11.CKA_VALUE])
    if value[0] is None:
        value_error = "CKR_ATTRIBUTE_SENSITIVE"
except PyKCS11.PyKCS11Error as e:
    value_error = str(e)
print(json.dumps({
    "found": 1,
    "sensitive": bool(flags[0]),
    "extractable": bool(flags[1]),
    "never_extractable": bool(flags[2]),
    "value_error": value_error,
}))
