// Reloads the page every few seconds while the run it shows is queued or running: the page includes this script
// only then (a file, not an inline script: the Content-Security-Policy runs scripts from Loupe's origin only).
// The interval is the script tag's data-every, in milliseconds.
const every = Number(document.currentScript && document.currentScript.dataset.every) || 3000;
setTimeout(() => window.location.reload(), every);
