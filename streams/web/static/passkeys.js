// Passkeys (WebAuthn) for the forms marked data-passkey: ask the site for options, let the
// browser create or use a passkey, put its answer in the form and send the form.
"use strict";
(function () {
  function fromB64url(text) {
    let s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function ids(list) {
    (list || []).forEach(function (c) { c.id = fromB64url(c.id); });
  }

  function answer(cred) {
    const r = cred.response;
    const out = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: { clientDataJSON: toB64url(r.clientDataJSON) },
    };
    if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle) out.response.userHandle = toB64url(r.userHandle);
    }
    return out;
  }

  async function run(form) {
    const status = form.querySelector("[data-passkey-status]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      status.textContent = "This browser cannot use passkeys.";
      return;
    }
    const body = new URLSearchParams({ csrf_token: form.elements.csrf_token.value });
    const reply = await fetch(form.dataset.options, { method: "POST", body: body, credentials: "same-origin" });
    if (!reply.ok) throw new Error("options " + reply.status);
    const options = await reply.json();
    options.challenge = fromB64url(options.challenge);
    let cred;
    if (form.dataset.passkey === "register") {
      options.user.id = fromB64url(options.user.id);
      ids(options.excludeCredentials);
      cred = await navigator.credentials.create({ publicKey: options });
    } else {
      ids(options.allowCredentials);
      cred = await navigator.credentials.get({ publicKey: options });
    }
    const data = answer(cred);
    form.elements.credential.value = JSON.stringify(data);
    if (form.elements.transports && data.response.transports) {
      form.elements.transports.value = data.response.transports.join(",");
    }
    form.submit();
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const status = form.querySelector("[data-passkey-status]");
      status.textContent = "";
      run(form).catch(function () {
        status.textContent = "The passkey was not used (cancelled, timed out or not allowed). Try again.";
      });
    });
  });
})();
