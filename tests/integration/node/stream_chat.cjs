// Streams chat completions through a Guard proxy with the official `openai` Node SDK and
// prints what the SDK delivered, as JSON, for tests/integration/test_streaming_node.py.
//
//   NODE_PATH=<dir>/node_modules node stream_chat.cjs <baseURL>
"use strict";
const OpenAI = require("openai");

async function collect(client, content, extra) {
  const stream = await client.chat.completions.create({
    model: "gpt-4o-mini",
    stream: true,
    messages: [{ role: "user", content }],
    ...extra,
  });
  const out = { text: "", pieces: [], args: "", names: [], finishes: [], usage: null };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.content) {
        out.text += choice.delta.content;
        out.pieces.push(choice.delta.content);
      }
      for (const call of choice.delta.tool_calls || []) {
        if (call.function && call.function.name) out.names.push(call.function.name);
        out.args += (call.function && call.function.arguments) || "";
      }
      if (choice.finish_reason) out.finishes.push(choice.finish_reason);
    }
  }
  return out;
}

async function main() {
  const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-node-test", maxRetries: 0,
                              timeout: 30000 });
  const tools = [{ type: "function", function: { name: "send_email", parameters: {
    type: "object", properties: { to: { type: "string" } } } } }];
  const result = {
    restored: await collect(client, "Please write to maria.gonzalez@example.org",
                            { stream_options: { include_usage: true } }),
    blocked: await collect(client, "Compare us with globex in one long sentence please."),
    tool: await collect(client, "mail maria.gonzalez@example.org", { tools }),
  };
  process.stdout.write(JSON.stringify(result));
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
