"use strict";
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  const key = document.getElementById("login-key").value;
  try {
    const reply = await fetch("/dashboard/login", {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({key}),
      credentials: "same-origin",
    });
    if (reply.ok) {
      window.location.replace("/dashboard");
      return;
    }
    const body = await reply.json().catch(() => ({}));
    error.textContent = (body.error && body.error.message) || `Sign-in failed (${reply.status}).`;
  } catch (err) {
    error.textContent = "The gateway cannot be reached.";
  }
  error.hidden = false;
});
