// The shop's own page code: its login form and logout button, and what the chat's state is. Nothing here signs
// anyone into the chat: the tiledesk-auth tag does, from the shop's session, on every page load.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const words = {
    loading: "Signing you in to the chat…",
    authenticated: "The chat knows you",
    anonymous: "Chatting anonymously.",
    error: "Not signed in to the shop: the chat stays hidden.",
  };
  document.addEventListener("tiledesk-auth:state", (event) => {
    const state = event.detail;
    $("status").dataset.status = state.status;
    $("status").textContent =
      state.status === "authenticated" ? `${words.authenticated} (chat id ${state.userId}).` : words[state.status] || state.status;
    const signedIn = state.status === "authenticated";
    $("login").hidden = signedIn || state.status === "loading";
    $("sign-out").hidden = !signedIn;
  });
  document.addEventListener("tiledesk-auth:error", (event) => {
    $("status").textContent = `The chat could not start: ${event.detail.message}`;
    $("login").hidden = false;
  });
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = JSON.stringify({ email: $("email").value, password: $("password").value });
    const answer = await fetch("/shop/login", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    if (answer.ok) location.reload();
    else $("status").textContent = "Wrong email or password.";
  });
  $("sign-out").addEventListener("click", async () => {
    await fetch("/shop/logout", { method: "POST" });
    location.reload();
  });
})();
