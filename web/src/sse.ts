/**
 * Reads a server-sent-events body from fetch() (EventSource cannot send the API key): calls
 * `onEvent` with each event's name ("message" when unnamed) and data, until the body ends.
 */

/** Longest event accepted; a longer one means a broken stream. */
const MAX_EVENT = 4 << 20;

/** Reads `response`'s events until it ends (an aborted fetch makes it throw). */
export async function readSse(response: Response, onEvent: (name: string, data: string) => void): Promise<void> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
    if (buffer.length > MAX_EVENT) throw new Error('an event of the stream is too long');
  }
}
