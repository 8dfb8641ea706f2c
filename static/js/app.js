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

// Upload progress for HTMX multipart forms.
document.addEventListener("htmx:xhr:progress", (event) => {
  const bar = event.target.querySelector && event.target.querySelector(".upload-progress");
  if (!bar || !event.detail.lengthComputable) return;
  bar.hidden = false;
  bar.value = Math.round((100 * event.detail.loaded) / event.detail.total);
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
