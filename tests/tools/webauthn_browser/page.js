// Runs inside the page driver.mjs serves. Turns the JSON options the driver passes on into the
// objects navigator.credentials expects (base64url strings to ArrayBuffers), runs the ceremony,
// and turns the credential back into JSON (ArrayBuffers to base64url without padding). Errors
// come back as values, `{ok: false, error: "<name>: <message>"}`, never as exceptions, so the
// driver can answer them and carry on.
'use strict';

(() => {
  function toBase64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function fromBase64url(text, field) {
    if (typeof text !== 'string') throw new TypeError(`${field} must be a base64url string`);
    if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new TypeError(`${field} is not base64url: ${text}`);
    const b64 = text.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  // `challenge` is base64url bytes; `challenge_text` is a string whose UTF-8 bytes are the
  // challenge, as privacyIDEA's passkey clients send it (TextEncoder().encode(challenge)).
  function challengeOf(options) {
    if (typeof options.challenge_text === 'string') {
      if (options.challenge !== undefined) throw new TypeError('give challenge or challenge_text, not both');
      return new TextEncoder().encode(options.challenge_text).buffer;
    }
    return fromBase64url(options.challenge, 'challenge');
  }

  function descriptors(list, field) {
    if (list === undefined || list === null) return undefined;
    if (!Array.isArray(list)) throw new TypeError(`${field} must be an array`);
    return list.map((d, i) => ({ ...d, id: fromBase64url(d.id, `${field}[${i}].id`) }));
  }

  function creationOptions(json) {
    const options = { ...json, challenge: challengeOf(json) };
    delete options.challenge_text;
    if (json.user) options.user = { ...json.user, id: fromBase64url(json.user.id, 'user.id') };
    const exclude = descriptors(json.excludeCredentials, 'excludeCredentials');
    if (exclude === undefined) delete options.excludeCredentials;
    else options.excludeCredentials = exclude;
    return options;
  }

  function requestOptions(json) {
    const options = { ...json, challenge: challengeOf(json) };
    delete options.challenge_text;
    const allow = descriptors(json.allowCredentials, 'allowCredentials');
    // Missing or empty: a discoverable (usernameless) request.
    if (allow === undefined || allow.length === 0) delete options.allowCredentials;
    else options.allowCredentials = allow;
    return options;
  }

  function failure(e) {
    const name = e && e.name ? e.name : 'Error';
    const message = e && e.message !== undefined ? e.message : String(e);
    return { ok: false, error: `${name}: ${message}` };
  }

  // Runs navigator.credentials[kind] with the options `build` makes of `json`, and answers the
  // credential as JSON, its response's fields as `response` picks them.
  async function ceremony(kind, build, json, response) {
    try {
      const credential = await navigator.credentials[kind]({ publicKey: build(json) });
      return {
        ok: true,
        id: credential.id,
        rawId: toBase64url(credential.rawId),
        type: credential.type,
        authenticatorAttachment: credential.authenticatorAttachment,
        response: response(credential.response),
        clientExtensionResults: credential.getClientExtensionResults(),
      };
    } catch (e) {
      return failure(e);
    }
  }

  function create(json) {
    return ceremony('create', creationOptions, json, (r) => ({
      clientDataJSON: toBase64url(r.clientDataJSON),
      attestationObject: toBase64url(r.attestationObject),
      transports: typeof r.getTransports === 'function' ? r.getTransports() : [],
    }));
  }

  function get(json) {
    return ceremony('get', requestOptions, json, (r) => ({
      clientDataJSON: toBase64url(r.clientDataJSON),
      authenticatorData: toBase64url(r.authenticatorData),
      signature: toBase64url(r.signature),
      userHandle: r.userHandle ? toBase64url(r.userHandle) : null,
    }));
  }

  window.countersignWebauthn = { create, get };
})();
