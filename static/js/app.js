// Small progressive enhancements; every page works without this file.
document.addEventListener("htmx:responseError", (event) => {
  const box = document.getElementById("messages");
  if (!box) return;
  const div = document.createElement("div");
  div.className = "flash flash-error";
  div.setAttribute("role", "alert");
  div.textContent = `Request failed (${event.detail.xhr.status}). Please reload and try again.`;
  box.appendChild(div);
});

// Instead of inline handlers (the Content-Security-Policy forbids them):
// a select with data-autosubmit submits its form on change; a [data-dismiss] button
// removes the element it sits in (flash messages).
document.addEventListener("change", (event) => {
  const select = event.target.closest && event.target.closest("select[data-autosubmit]");
  if (select && select.form) select.form.submit();
});
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-dismiss]");
  if (button && button.parentElement) button.parentElement.remove();
});

// A pushed fragment with a [data-go] link (an upload a worker stored) opens that page.
document.addEventListener("htmx:load", (event) => {
  const elt = event.detail.elt;
  const link = elt.matches && (elt.matches("a[data-go]") ? elt : elt.querySelector("a[data-go]"));
  if (link) window.location.assign(link.href);
});

// Drag-and-drop onto a .dropzone puts the file into its file input.
document.addEventListener("dragover", (event) => {
  const zone = event.target.closest && event.target.closest(".dropzone");
  if (!zone) return;
  event.preventDefault();
  zone.classList.add("dragging");
});
document.addEventListener("dragleave", (event) => {
  const zone = event.target.closest && event.target.closest(".dropzone");
  if (zone) zone.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  const zone = event.target.closest && event.target.closest(".dropzone");
  if (!zone) return;
  event.preventDefault();
  zone.classList.remove("dragging");
  const input = zone.querySelector("input[type=file]");
  if (input && event.dataTransfer && event.dataTransfer.files.length) {
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
});


// A button that submits its form natively to another URL (downloads bypass htmx).
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-native-submit]");
  if (!button || !button.form) return;
  const form = button.form;
  const action = form.getAttribute("action");
  form.setAttribute("action", button.dataset.nativeSubmit);
  form.submit();
  form.setAttribute("action", action);
});

// A file over the upload limit is refused before it is sent (the server checks too).
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!input.matches || !input.matches("input[type=file][data-max-mb]")) return;
  const limit = Number(input.dataset.maxMb);
  const file = input.files && input.files[0];
  const tooBig = file && file.size > limit * 1024 * 1024;
  const message = tooBig
    ? `The file is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${limit} MB.`
    : "";
  input.setCustomValidity(message);
  if (tooBig) input.reportValidity();
});

// Dataset files go up in pieces (the protocol: projects/uploads.py), never in one
// request body: a form with data-chunked-upload opens an upload there, sends the file
// piece by piece at the server's offset (a dropped connection resumes where the server
// stopped; the same file chosen again after a reload resumes too), then finishes it.
// Errors come back as the form re-rendered with them, which replaces the form.
const UPLOAD_RETRIES = 8;

function flashError(text) {
  const box = document.getElementById("messages");
  if (!box) return;
  const div = document.createElement("div");
  div.className = "flash flash-error";
  div.setAttribute("role", "alert");
  div.textContent = text;
  box.appendChild(div);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// One request; resolves with {status, json, html} (rejects only when no answer came).
function send(method, url, body, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      const type = xhr.getResponseHeader("Content-Type") || "";
      const answer = { status: xhr.status, json: null, html: null, url: xhr.responseURL };
      if (type.startsWith("application/json")) answer.json = JSON.parse(xhr.responseText);
      else if (type.startsWith("text/html")) answer.html = xhr.responseText;
      resolve(answer);
    };
    xhr.onerror = () => reject(new Error("network"));
    xhr.ontimeout = () => reject(new Error("timeout"));
    xhr.send(body);
  });
}

// Our answers are JSON, or HTML to put in the form's place (422: the form with its
// errors; 202: a worker checks the file). Any other page (200) is where the server
// sent us instead, such as the login page after the session ended: go there.
function replaceWith(element, answer) {
  if (answer.status === 200) window.location.assign(answer.url);
  else htmx.swap(element, answer.html, { swapStyle: "outerHTML" });
}

async function sendWithRetries(method, url, body, headers, onProgress) {
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await send(method, url, body, headers, onProgress);
      if (answer.status < 500 || attempt >= UPLOAD_RETRIES) return answer;
    } catch (error) {
      if (attempt >= UPLOAD_RETRIES) throw error;
    }
    await sleep(Math.min(500 * 2 ** attempt, 15000));
  }
}

async function uploadInPieces(form, input, file) {
  const csrf = { "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value };
  const bar = form.querySelector(".upload-progress");
  const button = form.querySelector("button[type=submit]");
  const key = ["slmlab-upload", form.dataset.chunkedUpload, file.name, file.size, file.lastModified].join("|");
  const showProgress = (bytes) => {
    if (!bar) return;
    bar.hidden = false;
    bar.value = Math.round((100 * bytes) / Math.max(file.size, 1));
  };
  let upload = null;
  const earlier = localStorage.getItem(key);
  if (earlier) {
    try {
      const answer = await send("GET", earlier);
      if (answer.json && answer.json.status === "receiving") upload = { url: earlier, ...answer.json };
    } catch (error) { /* start afresh */ }
  }
  if (!upload) {
    const fields = new FormData(form);
    fields.delete(input.name);
    fields.set("filename", file.name);
    fields.set("size", String(file.size));
    const answer = await sendWithRetries("POST", form.dataset.chunkedUpload, fields, csrf);
    if (answer.html) return replaceWith(form, answer);
    if (answer.status !== 201) throw new Error(`status ${answer.status}`);
    upload = answer.json;
    localStorage.setItem(key, upload.url);
  }
  const chunk = upload.chunk_size || 8 * 1048576;
  if (button) button.disabled = true;
  let offset = upload.offset;
  let failures = 0;
  showProgress(offset);
  while (offset < file.size) {
    const end = Math.min(offset + chunk, file.size);
    const headers = { ...csrf, "Upload-Offset": String(offset), "Content-Type": "application/octet-stream" };
    let answer = null;
    try {
      answer = await send("PUT", upload.url, file.slice(offset, end), headers, (n) => showProgress(offset + n));
    } catch (error) { /* no answer: ask the server below */ }
    if (answer && answer.html) {
      localStorage.removeItem(key);
      return replaceWith(form, answer);
    }
    if (answer && answer.json && (answer.status === 200 || answer.status === 409)) {
      if (answer.status === 200) failures = 0;
      offset = answer.json.offset;
      if (answer.json.status !== "receiving") break;
      continue;
    }
    if (answer && answer.status < 500) throw new Error(`status ${answer.status}`);
    if (++failures > UPLOAD_RETRIES) throw new Error("the connection keeps dropping");
    await sleep(Math.min(500 * 2 ** failures, 15000));
    try {
      const state = await send("GET", upload.url);
      if (state.json) offset = state.json.offset;
    } catch (error) { /* still offline: try the piece again */ }
  }
  showProgress(file.size);
  const done = await sendWithRetries("POST", upload.url + "finish/", null, csrf);
  localStorage.removeItem(key);
  if (done.json && done.json.redirect) {
    window.location.assign(done.json.redirect);
  } else if (done.html) {
    replaceWith(form, done);
  } else {
    throw new Error(`status ${done.status}`);
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches || !form.matches("form[data-chunked-upload]")) return;
  const input = form.querySelector("input[type=file]");
  const file = input && input.files && input.files[0];
  if (!file) return; // nothing to send in pieces: the form posts as it is
  event.preventDefault();
  uploadInPieces(form, input, file).catch((error) => {
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = false;
    flashError(`The upload of “${file.name}” stopped (${error.message}). Choose the file again to resume.`);
  });
});
