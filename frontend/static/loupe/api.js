// Small helpers for talking to Loupe's REST API from pages (session or crowd cookie + CSRF).

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(message, status, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

// The whole answer: { status, data (parsed JSON or null), headers }. Throws ApiError when not ok.
export async function apiCall(method, url, body) {
  const options = { method, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new ApiError("The server could not be reached; check your connection and try again.", 0, null);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.message) || `Request failed (${response.status})`;
    throw new ApiError(message, response.status, data);
  }
  return { status: response.status, data, headers: response.headers };
}

export async function api(method, url, body) {
  return (await apiCall(method, url, body)).data;
}

export function requestId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}
