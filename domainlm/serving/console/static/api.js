// Talking to the gateway: the API key lives in sessionStorage (this tab only) and travels in the Authorization
// header. Errors come back in the OpenAI shape {"error": {"message", "type", "code"}}; ApiError carries them.

const KEY_SLOT = "domainlm.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_SLOT, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_SLOT);
}

export class ApiError extends Error {
  constructor(status, message, type, code) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
  }
}

export function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const err = body && body.error ? body.error : {};
  const message = err.message || (body && body.detail) || `${response.status} ${response.statusText}`;
  return new ApiError(response.status, typeof message === "string" ? message : JSON.stringify(message),
    err.type, err.code);
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

// Server-sent events from /v1/chat/completions with stream=true. Calls onChunk(parsed JSON) per `data:` line as
// bytes arrive; resolves with the response (its headers name the adapter and policy notes).
export async function streamChat(payload, { onOpen, onChunk, signal }) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...payload, stream: true }),
    signal,
  });
  if (!response.ok) throw await errorFrom(response);
  if (onOpen) onOpen(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return response;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(500, chunk.error.message, chunk.error.type, chunk.error.code);
      onChunk(chunk);
    }
  }
  return response;
}
