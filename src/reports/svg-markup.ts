/**
 * The few helpers every picture of the HTML report shares: escaping text
 * for HTML and inline SVG, and writing coordinates.
 *
 * Inline SVG in an HTML page is parsed by the HTML parser as foreign
 * content, so the same entity escaping that protects element text and
 * quoted attribute values protects `<text>`, `<title>` and attributes
 * inside `<svg>`: a symbol name like `</svg><script>` stays text.
 */

/** Escape text for HTML (and inline SVG) element content and quoted attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

/** A coordinate or length for an attribute: finite, at most one decimal (0 for NaN or infinity). */
export function px(v: number): string {
  if (!Number.isFinite(v)) return '0';
  const r = Math.round(v * 10) / 10;
  return Object.is(r, -0) ? '0' : String(r);
}

/** `s` cut to `max` characters with an ellipsis (the full text goes in a `<title>`). */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, Math.max(1, max - 1)) + '…';
}

/** Thousands separators. */
export function num(n: number): string {
  return n.toLocaleString('en-US');
}

/** A byte count or offset in short form: 1.2 KiB, 3.4 MiB. */
export function shortBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

/** A count in short form: 950, 12.3k, 4.5M, 1.2G. */
export function shortCount(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

/**
 * Open an inline `<svg>` of natural size `w`×`h` that scales down to its
 * container; `label` is its accessible name (escaped here).
 */
export function svgOpen(cls: string, w: number, h: number, label: string): string {
  return (
    `<svg class="${escapeHtml(cls)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${px(w)} ${px(h)}" width="${px(w)}" height="${px(h)}" role="img" aria-label="${escapeHtml(label)}">` +
    `<title>${escapeHtml(label)}</title>`
  );
}
