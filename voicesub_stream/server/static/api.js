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

// Resolves once a token is entered in the page's token form (shown only when asked).
export function askToken(form) {
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

// fetch() with the token; on 401 asks for one (once per call) and tries again.
export async function api(path, options = {}, form = document.getElementById("token-form")) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401 || !form) return response;
    await askToken(form);
  }
}

export function socketUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token()) url.searchParams.set("token", token()); // browsers cannot set WebSocket headers
  return url.href;
}
