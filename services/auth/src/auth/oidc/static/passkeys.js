// Passkeys on the hosted sign-in pages (API.md §13). The pages work without this file: a passkey
// form is `hidden` until it runs, and only in a browser that can answer WebAuthn in JSON.
// The challenge comes from the server when the button is pressed (bound to this browser's CSRF
// cookie and this authorization request, one use, 5 minutes); the signed answer goes back in the
// form's `credential` field as an ordinary form post, so the server answers with a page.
"use strict";

(() => {
  const capable =
    window.PublicKeyCredential !== undefined &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
  if (!capable) {
    return;
  }
  for (const form of document.querySelectorAll("form[data-passkey-options]")) {
    const error = form.querySelector("[data-passkey-error]");
    const button = form.querySelector("button");
    const fail = (message) => {
      error.textContent = message;
      error.hidden = false;
      button.disabled = false;
    };
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      error.hidden = true;
      const body = new URLSearchParams();
      body.set("csrf_token", form.elements.csrf_token.value);
      if (form.elements.mfa_token) {
        body.set("mfa_token", form.elements.mfa_token.value);
      }
      let options;
      try {
        const answer = await fetch(form.dataset.passkeyOptions, {
          method: "POST",
          body,
          credentials: "same-origin",
        });
        if (!answer.ok) {
          fail("Passkey sign-in is not possible right now. Reload the page and try again.");
          return;
        }
        options = (await answer.json()).publicKey;
      } catch {
        fail("Passkey sign-in is not possible right now. Reload the page and try again.");
        return;
      }
      let credential;
      try {
        credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
        });
      } catch {
        fail("No passkey was used. Try again, or sign in another way.");
        return;
      }
      form.elements.credential.value = JSON.stringify(credential.toJSON());
      form.submit(); // no submit event: this handler does not run again
    });
  }
})();
