// Passkeys (WebAuthn) for the secure portal. Everything else in the portal
// works without this script; these buttons stay hidden without it.
(function () {
  "use strict";
  if (!window.PublicKeyCredential) return;
  function enc(buf) {
    var s = "", b = new Uint8Array(buf);
    for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function dec(s) {
    var t = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var b = new Uint8Array(t.length);
    for (var i = 0; i < t.length; i++) b[i] = t.charCodeAt(i);
    return b.buffer;
  }
  function csrf() {
    var i = document.querySelector('input[name="csrf"]');
    return i ? i.value : "";
  }
  async function call(url, body) {
    var r = await fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()}, body: JSON.stringify(body || {})});
    var j = await r.json();
    if (!r.ok) throw new Error(j.error || "failed");
    return j;
  }
  function say(btn, msg) {
    var s = document.getElementById(btn.dataset.status);
    if (s) s.textContent = msg;
  }
  async function register(btn) {
    var pk = (await call("/portal/passkey/register/begin")).publicKey;
    pk.challenge = dec(pk.challenge);
    pk.user.id = dec(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    var c = await navigator.credentials.create({publicKey: pk});
    await call("/portal/passkey/register/finish", {id: c.id, rawId: enc(c.rawId), type: c.type, response: {
      attestationObject: enc(c.response.attestationObject), clientDataJSON: enc(c.response.clientDataJSON),
      transports: c.response.getTransports ? c.response.getTransports() : []}});
    say(btn, "Passkey added. Next time you can sign in with it instead of a code.");
  }
  async function login() {
    var pk = (await call("/portal/passkey/login/begin")).publicKey;
    pk.challenge = dec(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    var a = await navigator.credentials.get({publicKey: pk});
    await call("/portal/passkey/login/finish", {id: a.id, rawId: enc(a.rawId), type: a.type, response: {
      authenticatorData: enc(a.response.authenticatorData), clientDataJSON: enc(a.response.clientDataJSON),
      signature: enc(a.response.signature), userHandle: a.response.userHandle ? enc(a.response.userHandle) : null}});
    location.reload();
  }
  document.querySelectorAll("[data-passkey]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", async function () {
      btn.disabled = true;
      try {
        await (btn.dataset.passkey === "register" ? register(btn) : login(btn));
      } catch (e) {
        say(btn, "That did not work (" + e.message + "). You can use a code instead.");
      } finally {
        btn.disabled = false;
      }
    });
  });
})();
