// Talking to the API. The bearer token lives in this tab's session storage and travels only in the
// Authorization header: never in a URL, so never in history, logs or a Referer.

const TOKEN_KEY = "skydriver.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// An error whose message says what to do about it.
export class ApiError extends Error {
  constructor(status, detail) {
    super(advice(status, detail));
    this.status = status;
    this.detail = detail;
  }
}

function advice(status, detail) {
  if (status === 0) return `Cannot reach the API (${detail}): check that 'skydriver api' is running, then reload.`;
  if (status === 401) return `The API refused the token (${detail}): sign in again with a valid token.`;
  if (status === 403) return `Not allowed: ${detail}. Ask an admin for a token with that role.`;
  if (status === 404) return `Not found: ${detail}. Check the id.`;
  if (status === 503) return `The API is not ready (${detail}); retry in a few seconds.`;
  return detail;
}

async function detailOf(resp) {
  try {
    const body = await resp.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body);
  } catch {
    return `HTTP ${resp.status} ${resp.statusText}`.trim();
  }
}

export async function request(path, { method = "GET", body, headers = {}, signal, raw = false } = {}) {
  const sent = { ...headers };
  const bearer = token.get();
  if (bearer) sent.Authorization = `Bearer ${bearer}`;
  if (body !== undefined && typeof body !== "string") {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers: sent, body, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, err.message);
  }
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return raw ? resp : resp.json();
}

// Fetch a product with the token and hand it to the browser as a download (a link could not carry
// the Authorization header, and the token must not go into a URL).
export async function download(path, fallbackName) {
  const resp = await request(path, { raw: true });
  const disposition = resp.headers.get("Content-Disposition") || "";
  const name = (/filename="([^"]+)"/.exec(disposition) || [])[1] || fallbackName;
  const url = URL.createObjectURL(await resp.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000); // the browser has the file long before
  return name;
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// Follow a Server-Sent Events stream (fetch, since EventSource cannot send the Authorization header).
// A dropped stream is resumed with Last-Event-ID after the server's retry delay, so no state is missed
// or repeated. Calls onEvent(kind, data, lastEventId) until `end`; rejects on a 4xx (say, a revoked token).
export async function followEvents(path, onEvent, { signal, onConnection } = {}) {
  let lastEventId = null;
  let retryMs = 2000;
  while (!(signal && signal.aborted)) {
    const headers = { Accept: "text/event-stream" };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    let resp;
    try {
      resp = await request(path, { headers, signal, raw: true });
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status && err.status < 500) throw err;
      if (onConnection) onConnection(`reconnecting: ${err.message}`);
      await pause(retryMs, signal);
      continue;
    }
    if (onConnection) onConnection(lastEventId === null ? "live" : `live (resumed after event ${lastEventId})`);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let kind = "message";
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (data.length) {
              onEvent(kind, JSON.parse(data.join("\n")), lastEventId);
              if (kind === "end") return;
            }
            kind = "message";
            data = [];
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") kind = text;
            else if (field === "data") data.push(text);
            else if (field === "id") lastEventId = text;
            else if (field === "retry" && /^\d+$/.test(text)) retryMs = Number(text);
          }
        }
      }
    } catch (err) {
      if (err.name === "AbortError" || (signal && signal.aborted)) return;
    }
    if (onConnection) onConnection("stream dropped; resuming");
    await pause(retryMs, signal);
  }
}
