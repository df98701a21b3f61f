// Shared by every staff page. htmx sends the CSRF token from <body hx-headers>.
document.addEventListener("htmx:responseError", (event) => {
  const detail = event.detail.xhr;
  let message = "Something went wrong.";
  try { message = JSON.parse(detail.responseText).error.message || message; } catch (_) { /* not JSON */ }
  window.alert(message);
});
