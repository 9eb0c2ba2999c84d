// Self-blinding envelope codes: six characters of the study's unambiguous alphabet, the last a Luhn mod 26
// check character (the same rule as the server's participants.services.kits). A scanned label holds the URL
// /app/kit#CODE: the code is what follows the '#'.
const ALPHABET = "ACDEFGHJKMNPQRTUVWXY345679";

export function checkCharacter(body) {
  let factor = 2;
  let total = 0;
  for (let i = body.length - 1; i >= 0; i--) {
    const addend = factor * ALPHABET.indexOf(body[i]);
    total += Math.floor(addend / ALPHABET.length) + (addend % ALPHABET.length);
    factor = factor === 2 ? 1 : 2;
  }
  return ALPHABET[(ALPHABET.length - (total % ALPHABET.length)) % ALPHABET.length];
}

// Scanned text or typed code → "ABCDEF", or null when it cannot be an envelope code.
export function normalise(raw) {
  let text = String(raw || "").trim();
  const hash = text.indexOf("#");
  if (hash >= 0) text = decodeURIComponent(text.slice(hash + 1));
  const code = text.replace(/[\s-]/g, "").toUpperCase();
  if (code.length !== 6 || [...code].some((c) => !ALPHABET.includes(c))) return null;
  return checkCharacter(code.slice(0, 5)) === code[5] ? code : null;
}

export function format(code) {
  return `${code.slice(0, 3)}-${code.slice(3)}`;
}
