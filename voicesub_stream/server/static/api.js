// What both pages share: the bearer token and requests made with it.

const KEY = "voicesub-token";

export function token() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) sessionStorage.setItem(KEY, fromUrl);
  return sessionStorage.getItem(KEY) || "";
}

export function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

// The form that asks for the token, at the top of the page, made when first needed.
function tokenForm() {
  let form = document.getElementById("token-form");
  if (!form) {
    form = document.createElement("form");
    form.id = "token-form";
    form.className = "panel";
    form.innerHTML = `<label>This server needs an access token
      <input id="token" type="password" autocomplete="current-password" required></label>
      <button>Use token</button>`;
    document.querySelector("main").prepend(form);
  }
  return form;
}

// Resolves once a token is entered.
export function askToken() {
  const form = tokenForm();
  form.hidden = false;
  const input = form.querySelector("input");
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      form.hidden = true;
      resolve();
    }, { once: true });
  });
}

// fetch() with the token; on 401 asks for one and tries again.
export async function api(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401) return response;
    await askToken();
  }
}

export function socketUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token()) url.searchParams.set("token", token()); // browsers cannot set WebSocket headers
  return url.href;
}
