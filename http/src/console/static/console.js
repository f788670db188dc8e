// Countersign web console: the passkey ceremony of the sign-in and re-authentication forms.
// Everything else in the console is plain HTML forms; this file is the only script a console
// page loads (CSP script-src 'self', no inline code). It fills the form's hidden fields with
// the authenticator's assertion and submits the form; the server checks everything.
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

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("button[data-passkey]")) {
    b.hidden = !window.PublicKeyCredential;
    b.addEventListener("click", (ev) => { ev.preventDefault(); passkey(b); });
  }
});
