// HTTP-dates (RFC 9110 §5.6.7): Retry-After, and the response cache's Date, Expires, Last-Modified and
// If-Modified-Since. Parsed here rather than by Date.parse, which reads "1" as the year 2001, an ISO date or any
// other text it can make sense of as a date, and asctime as local time.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/**
 * An HTTP-date (RFC 9110 §5.6.7) → ms since the epoch, or undefined. The weekday is not checked against the date.
 * `nowMs` places an RFC 850 date's two-digit year.
 */
export function httpDateMs(text: string | undefined, nowMs: number): number | undefined {
  if (text === undefined) return undefined;
  let parts: [day: string, month: string, year: number, hour: string, minute: string, second: string] | undefined;
  text = text.trim();
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) parts = [m[1]!, m[2]!, Number(m[3]), m[4]!, m[5]!, m[6]!];
  else if ((m = RFC850_DATE.exec(text)) !== null) {
    // §5.6.7: a two-digit year that would be more than 50 years in the future is the most recent past year with those digits.
    const yy = Number(m[3]);
    const thisYear = new Date(nowMs).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + yy;
    if (year > thisYear + 50) year -= 100;
    parts = [m[1]!, m[2]!, year, m[4]!, m[5]!, m[6]!];
  } else if ((m = ASCTIME_DATE.exec(text)) !== null) parts = [m[2]!.trim(), m[1]!, Number(m[6]), m[3]!, m[4]!, m[5]!];
  if (parts === undefined) return undefined;
  const [day, month, year, hour, minute, second] = parts;
  const [d, h, min, s] = [Number(day), Number(hour), Number(minute), Number(second)];
  const monthIndex = MONTHS.indexOf(month);
  // 60: a leap second is a valid time-of-day (§5.6.7), read as the next minute's first.
  if (d < 1 || d > 31 || h > 23 || min > 59 || s > 60) return undefined;
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, d);
  // 31 Feb is no date: it would roll into March.
  if (date.getUTCDate() !== d) return undefined;
  return date.getTime() + ((h * 60 + min) * 60 + s) * 1000;
}

/**
 * An IMF-fixdate alone (`Sun, 06 Nov 1994 08:49:37 GMT`), the form every current sender uses, for where reading an
 * obsolete form wrong costs more than ignoring it (If-Modified-Since: a wrong 304).
 */
export function imfFixdateMs(text: string): number | undefined {
  return IMF_FIXDATE.test(text.trim()) ? httpDateMs(text, 0) : undefined;
}
