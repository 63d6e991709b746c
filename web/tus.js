// A small tus 1.0 client (creation + core): uploads a File in chunks, and resumes from the
// server's offset (HEAD) after a dropped connection, or after a reload (the upload's URL is
// remembered in localStorage, keyed by the file's name, size and date).
"use strict";

class TusUpload {
  // options: chunkSize (bytes), headers() -> extra headers (Authorization), onProgress(sent,
  // total), onRetry(attempt, delayMs, why), metadata {key: value} sent as Upload-Metadata.
  constructor(file, options = {}) {
    this.file = file;
    this.chunkSize = options.chunkSize || 8 * 1024 * 1024;
    this.headers = options.headers || (() => ({}));
    this.onProgress = options.onProgress || (() => {});
    this.onRetry = options.onRetry || (() => {});
    this.metadata = Object.assign({ filename: file.name }, options.metadata || {});
    this.maxAttempts = options.maxAttempts || 8;
    this.storageKey = `tus:${file.name}:${file.size}:${file.lastModified}`;
    this.url = null;
    this.offset = 0;
  }

  // Uploads the whole file; resolves with the task id the server made for it.
  async start() {
    this.url = localStorage.getItem(this.storageKey);
    let taskId = this.url ? await this.resumeOffset() : null;
    if (!this.url) await this.create();
    let failures = 0;
    while (!taskId) {
      try {
        taskId = await this.patch();
        failures = 0;
      } catch (err) {
        if (err.fatal || ++failures >= this.maxAttempts) throw err;
        const delay = Math.min(500 * 2 ** (failures - 1), 8000);
        this.onRetry(failures, delay, err.message);
        await new Promise((done) => setTimeout(done, delay));
        taskId = await this.resumeOffset().catch(() => null);
        if (!this.url) await this.create(); // expired meanwhile: start again
      }
    }
    localStorage.removeItem(this.storageKey);
    return taskId;
  }

  request(method, url, headers, body, withProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      const all = Object.assign({ "Tus-Resumable": "1.0.0" }, this.headers(), headers);
      for (const [name, value] of Object.entries(all)) xhr.setRequestHeader(name, value);
      if (withProgress) xhr.upload.onprogress = (ev) => this.onProgress(this.offset + ev.loaded, this.file.size);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error("the connection was lost"));
      xhr.ontimeout = () => reject(new Error("the server did not answer in time"));
      xhr.onabort = () => reject(new Error("the upload was interrupted"));
      xhr.send(body === undefined ? null : body);
    });
  }

  static encode(text) {
    const bytes = new TextEncoder().encode(String(text));
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  static failure(xhr, fallback) {
    let detail = fallback;
    try { detail = JSON.parse(xhr.responseText).detail || fallback; } catch (_) { /* not JSON */ }
    const err = new Error(detail);
    err.status = xhr.status;
    // 4xx other than a conflict of offsets (409) will not get better by trying again.
    err.fatal = xhr.status >= 400 && xhr.status < 500 && xhr.status !== 409;
    return err;
  }

  async create() {
    const meta = Object.entries(this.metadata)
      .map(([k, v]) => `${k} ${TusUpload.encode(v)}`).join(",");
    const xhr = await this.request("POST", "/uploads",
      { "Upload-Length": String(this.file.size), "Upload-Metadata": meta });
    if (xhr.status !== 201) throw TusUpload.failure(xhr, "the upload could not be started");
    // Location is absolute (PUBLIC_BASE_URL); keep its path so that the page's origin is used.
    this.url = new URL(xhr.getResponseHeader("Location"), location.href).pathname;
    this.offset = 0;
    localStorage.setItem(this.storageKey, this.url);
  }

  // Asks the server how much it has; the task id when the upload was complete already.
  async resumeOffset() {
    const xhr = await this.request("HEAD", this.url, {});
    if (xhr.status === 404 || xhr.status === 410) {
      localStorage.removeItem(this.storageKey);
      this.url = null;
      return null;
    }
    if (xhr.status !== 200) throw TusUpload.failure(xhr, "the upload's state is unknown");
    this.offset = Number(xhr.getResponseHeader("Upload-Offset"));
    this.onProgress(this.offset, this.file.size);
    return xhr.getResponseHeader("Upload-Task-Id");
  }

  async patch() {
    const end = Math.min(this.offset + this.chunkSize, this.file.size);
    const xhr = await this.request("PATCH", this.url, {
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": String(this.offset),
    }, this.file.slice(this.offset, end), true);
    if (xhr.status !== 204) throw TusUpload.failure(xhr, "a part of the upload was refused");
    this.offset = Number(xhr.getResponseHeader("Upload-Offset"));
    this.onProgress(this.offset, this.file.size);
    return xhr.getResponseHeader("Upload-Task-Id");
  }
}
