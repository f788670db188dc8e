// Countersign web console: the passkey ceremonies (signing in or confirming with a passkey,
// and registering one on the account page). Everything else in the console is plain HTML
// forms; this file is the only script a console page loads (CSP script-src 'self', no inline
// code). It fills a form's hidden fields with what the authenticator answered and submits the
// form; the server checks everything.
"use strict";

function b64url(buf) {
  const bytes = new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function passkey(button) {
  const form = button.form;
  const status = form.querySelector("[data-passkey-status]");
  const say = (text) => { if (status) status.textContent = text; };
  try {
    say("Asking the appliance for a challenge…");
    const r = await fetch("/console/passkey/challenge", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    if (!r.ok) throw new Error("the appliance gave no challenge (" + r.status + ")");
    const c = await r.json();
    say("Touch or unlock your passkey…");
    const cred = await navigator.credentials.get({
      publicKey: {
        challenge: new TextEncoder().encode(c.challenge),
        rpId: c.rpId,
        userVerification: "required",
        timeout: c.timeout,
      },
    });
    const a = cred.response;
    const set = (name, value) => { form.elements[name].value = value; };
    set("transaction_id", c.transaction_id);
    set("credential_id", b64url(cred.rawId));
    set("client_data", b64url(a.clientDataJSON));
    set("authenticator_data", b64url(a.authenticatorData));
    set("signature", b64url(a.signature));
    set("user_handle", a.userHandle ? b64url(a.userHandle) : "");
    say("Checking…");
    form.submit();
  } catch (e) {
    say("The passkey sign-in did not complete: " + e.message);
  }
}

// Registers an authenticator: the button names where the options come from (data-options), the
// kind (data-type, if the page registers several) and the form to fill and submit (data-form).
async function registerPasskey(button) {
  const form = document.getElementById(button.dataset.form);
  const status = button.parentElement.querySelector("[data-passkey-status]");
  const say = (text) => { if (status) status.textContent = text; };
  try {
    say("Asking the appliance to start the registration…");
    const body = new URLSearchParams({ _csrf: form.elements["_csrf"].value });
    if (button.dataset.type) body.set("type", button.dataset.type);
    const r = await fetch(button.dataset.options, { method: "POST", credentials: "same-origin", body });
    const o = await r.json();
    if (!r.ok) throw new Error(o.error || "the appliance refused (" + r.status + ")");
    say("Touch or unlock the security key or device…");
    const options = PublicKeyCredential.parseCreationOptionsFromJSON(o.publicKey);
    const cred = await navigator.credentials.create({ publicKey: options });
    const set = (name, value) => { form.elements[name].value = value; };
    set("serial", o.serial);
    set("transaction_id", o.transaction_id);
    set("attestation_object", b64url(cred.response.attestationObject));
    set("client_data", b64url(cred.response.clientDataJSON));
    say("Checking…");
    form.submit();
  } catch (e) {
    say("The authenticator was not registered: " + e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("button[data-register-passkey]")) {
    b.hidden = !(window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON);
    const status = b.parentElement.querySelector("[data-passkey-status]");
    if (!b.hidden && status) status.textContent = "";
    b.addEventListener("click", (ev) => { ev.preventDefault(); registerPasskey(b); });
  }
  for (const b of document.querySelectorAll("button[data-passkey]")) {
    b.hidden = !window.PublicKeyCredential;
    b.addEventListener("click", (ev) => { ev.preventDefault(); passkey(b); });
  }
});
