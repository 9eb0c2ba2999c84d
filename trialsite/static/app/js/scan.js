// Read a QR or barcode from the camera: BarcodeDetector where the browser has it, else the vendored jsQR
// (loaded only when needed). Resolves with the text, or null when the participant cancels.
let jsQRLoading = null;

function loadJsQR() {
  if (!jsQRLoading)
    jsQRLoading = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = new URL("../vendor/jsQR.js", import.meta.url).href;
      s.onload = () => resolve(window.jsQR);
      s.onerror = reject;
      document.head.append(s);
    });
  return jsQRLoading;
}

export async function scan(container) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  const video = document.createElement("video");
  video.setAttribute("playsinline", "");
  video.setAttribute("aria-label", "camera");
  video.muted = true;
  video.srcObject = stream;
  container.replaceChildren(video);
  await video.play();
  const stop = () => {
    stream.getTracks().forEach((tr) => tr.stop());
    container.replaceChildren();
  };
  const detector = "BarcodeDetector" in window ? new window.BarcodeDetector() : null;
  const decode = detector ? null : await loadJsQR();
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  try {
    for (let tries = 0; tries < 600; tries++) {
      if (detector) {
        const found = await detector.detect(video);
        if (found.length) return found[0].rawValue;
      } else if (video.videoWidth) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const found = decode(img.data, img.width, img.height);
        if (found) return found.data;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return null;
  } finally {
    stop();
  }
}
