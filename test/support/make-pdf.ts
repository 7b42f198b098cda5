/**
 * Writes `test/fixtures/documents/field-notes.pdf`, the PDF fixture of instruction backtranslation's
 * tests: a real PDF 1.4 file (catalog, page tree, one page per paragraph, Helvetica, cross-reference
 * table with exact offsets), written by hand so that the tests need no PDF-writing dependency.
 * Run: `npx tsx test/support/make-pdf.ts`.
 */
import { writeFileSync } from 'node:fs';

/** Each inner list is one page: its lines of text. */
const PAGES: string[][] = [
  [
    'Sourdough starter care.',
    'A sourdough starter is a culture of wild yeast and lactic acid bacteria kept in flour and water.',
    'Feed it once a day at room temperature with equal weights of flour and water, discarding',
    'half before each feeding, so the culture stays active and its acidity stays in check.',
  ],
  [
    'When the starter doubles within four to six hours after a feeding and smells pleasantly sour,',
    'it is ready to leaven bread. A starter kept in the refrigerator needs feeding only once a week,',
    'and two feedings at room temperature bring it back to full strength before baking.',
  ],
];

const pdfString = (text: string) => text.replace(/[\\()]/g, (c) => `\\${c}`);

function build(): string {
  const objects: string[] = [];
  const pageIds = PAGES.map((_, i) => 4 + i * 2);
  objects[1] = '<< /Type /Catalog /Pages 2 0 R >>';
  objects[2] = `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] /Count ${PAGES.length} >>`;
  objects[3] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>';
  PAGES.forEach((lines, i) => {
    const id = pageIds[i] as number;
    const stream = `BT /F1 11 Tf 14 TL 56 760 Td ${lines.map((line) => `(${pdfString(line)}) Tj T*`).join(' ')} ET`;
    objects[id] =
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${id + 1} 0 R >>`;
    objects[id + 1] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  });
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  for (let id = 1; id < objects.length; id++) {
    offsets[id] = out.length;
    out += `${id} 0 obj\n${objects[id]}\nendobj\n`;
  }
  const xref = out.length;
  out += `xref\n0 ${objects.length}\n0000000000 65535 f \n`;
  for (let id = 1; id < objects.length; id++) out += `${String(offsets[id]).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return out;
}

writeFileSync(new URL('../fixtures/documents/field-notes.pdf', import.meta.url), build(), 'latin1');
