// The measurements of bench/run.py, for Node BullMQ, one per call:
//
//   node bench.mjs <measure> <redis-url> [options as JSON]
//
// measure: drain | single | bulk | latency | memory. Prints one line of
// JSON with the result. bench/run.py --compare bullmq runs this beside its
// own measurements, against the same Redis, interleaved run by run.
//
// The workers keep finished jobs as Conveyor does by default (the last
// 1,000 completed for a day, 10,000 failed for a week), so both engines
// do the same bookkeeping per job.
import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const [measure, url, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions || "{}");
const keep = {
  removeOnComplete: { count: 1000, age: 86400 },
  removeOnFail: { count: 10000, age: 604800 },
};

function connection() {
  return new IORedis(url, { maxRetriesPerRequest: null });
}

function nowMs() {
  return performance.timeOrigin + performance.now();
}

// Redis's CPU (user + system) and its time in scripts so far, in usec.
async function redisUsec(redis) {
  const cpu = await redis.info("cpu");
  const stats = await redis.info("commandstats");
  const field = (text, name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(text)?.[1] ?? 0);
  let scripts = 0;
  for (const match of stats.matchAll(/cmdstat_(evalsha|eval|fcall):calls=\d+,usec=(\d+)/g)) {
    scripts += Number(match[2]);
  }
  return {
    cpu: (field(cpu, "used_cpu_user") + field(cpu, "used_cpu_sys")) * 1e6,
    scripts,
  };
}

function perJob(before, after, n) {
  return { cpu: (after.cpu - before.cpu) / n, scripts: (after.scripts - before.scripts) / n };
}

async function addInBulk(queue, n, data, opts = keep) {
  for (let i = 0; i < n; i += 10000) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + 10000); j++) {
      chunk.push({ name: "noop", data: data(j), opts });
    }
    await queue.addBulk(chunk);
  }
}

async function drain() {
  const n = options.jobs;
  const redis = connection();
  const queue = new Queue("bench-drain", { connection: redis });
  await addInBulk(queue, n, (j) => j);
  const before = await redisUsec(redis);
  let done = 0;
  let finished;
  const all = new Promise((resolve) => (finished = resolve));
  const worker = new Worker("bench-drain", async () => null, {
    connection: connection(),
    concurrency: 100,
    autorun: false,
    ...keep,
  });
  worker.on("completed", () => {
    done += 1;
    if (done === n) finished();
  });
  const start = performance.now();
  worker.run();
  await all;
  const seconds = (performance.now() - start) / 1000;
  const after = await redisUsec(redis);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  redis.disconnect();
  return { rate: n / seconds, redis: perJob(before, after, n) };
}

async function single() {
  const n = options.jobs;
  const queue = new Queue("bench-single", { connection: connection() });
  await queue.waitUntilReady();
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    await queue.add("email", { to: `user${i}@example.com` }, keep);
  }
  const seconds = (performance.now() - start) / 1000;
  await queue.obliterate({ force: true });
  await queue.close();
  return { rate: n / seconds };
}

async function bulk() {
  const n = options.jobs;
  const redis = connection();
  const queue = new Queue("bench-bulk", { connection: redis });
  await queue.waitUntilReady();
  const before = await redisUsec(redis);
  const start = performance.now();
  await addInBulk(queue, n, (i) => ({ to: `user${i}@example.com` }));
  const seconds = (performance.now() - start) / 1000;
  const after = await redisUsec(redis);
  await queue.obliterate({ force: true });
  await queue.close();
  return { rate: n / seconds, redis: perJob(before, after, n) };
}

async function memory() {
  const n = options.jobs;
  const redis = connection();
  const queue = new Queue("bench-memory", { connection: redis });
  await queue.waitUntilReady();
  const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info("memory"))[1]);
  const before = await used();
  // BullMQ's defaults (it keeps every finished job): no options stored per job
  await addInBulk(queue, n, () => ({ p: "x".repeat(92) }), {});
  const bytes = ((await used()) - before) / n;
  await queue.obliterate({ force: true });
  await queue.close();
  return { bytes };
}

// Adds one job every 1/rate s for `seconds`, stamped with the wall clock.
async function produce() {
  const queue = new Queue("bench-latency", { connection: connection() });
  await queue.waitUntilReady();
  const interval = 1000 / options.rate;
  const start = performance.now();
  const count = Math.floor(options.rate * options.seconds);
  for (let i = 0; i < count; i++) {
    const delay = start + i * interval - performance.now();
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    await queue.add("tick", { sent: nowMs() }, keep);
  }
  await queue.close();
  return { added: count };
}

// Enqueue-to-start with one idle worker; the producer is another process.
async function latency() {
  const samples = [];
  const worker = new Worker(
    "bench-latency",
    async (job) => {
      samples.push(nowMs() - job.data.sent);
    },
    { connection: connection(), concurrency: 50, ...keep },
  );
  await worker.waitUntilReady();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const child = fork(new URL(import.meta.url), ["produce", url, JSON.stringify(options)], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  await new Promise((resolve) => child.on("exit", resolve));
  await new Promise((resolve) => setTimeout(resolve, 300));
  await worker.close();
  const queue = new Queue("bench-latency", { connection: connection() });
  await queue.obliterate({ force: true });
  await queue.close();
  return { samples };
}

const measures = { drain, single, bulk, memory, produce, latency };
const result = await measures[measure]();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
