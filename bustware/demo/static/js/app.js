// The demo's script: says on the page that it ran from its versioned URL.
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("status");
  if (el) { el.textContent = "app.js ran. Every asset on this page has a versioned URL:"; el.className = "busted"; }
});
