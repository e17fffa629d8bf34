/** Models: what is loaded, its architecture, quantization, context and memory. */
import type { ModelInfo } from '../../../src/dashboard/wire.js';
import { bytes, count } from '../format';

/** The models view. */
export function ModelsView({ model }: { model: ModelInfo | null }) {
  if (!model) return <p class="hint">Waiting for the live feed…</p>;
  const rows: [string, string][] = [
    ['Name', model.id],
    ['State', model.state],
    ['Architecture', model.architecture ?? 'n/a'],
    ['Quantization', model.quantization ?? 'n/a'],
    ['Parameters', count(model.parameters)],
    ['Layers', model.layers === null ? 'n/a' : String(model.layers)],
    ['Context (trained)', model.contextTrain === null ? 'n/a' : String(model.contextTrain)],
    ['Context per slot', model.contextPerSlot === null ? 'n/a' : String(model.contextPerSlot)],
    ['Slots', model.slots === null ? 'n/a' : String(model.slots)],
    ['File size', bytes(model.fileBytes)],
    ['KV cache', bytes(model.kvBytes)],
    ['Resident memory', bytes(model.residentBytes)],
    ['Use', model.embeddingOnly ? 'embeddings only' : 'chat, completions, embeddings'],
  ];
  return (
    <div class="models">
      <table>
        <caption>Loaded model</caption>
        <tbody>
          {rows.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td data-testid={`model-${k.toLowerCase().replace(/\W+/g, '-')}`}>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
