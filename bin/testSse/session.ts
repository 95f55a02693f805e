/**
 * One run of `npm run test-sse`: opens the stream (EventSource, which resumes a dropped stream
 * with Last-Event-ID), then takes its steps one after another, each waiting for its answer:
 * tools/list, tools/call list_projects, tools/call simulate_work with its progress.
 */
import { EventSource } from 'eventsource';
import type { Output } from './output';
import type { TestSseOptions } from './options';

/** Every event type of the seed stream (README, Events). */
export const EVENT_TYPES = [
  'mcp-notification',
  'mcp-response',
  'tool-result',
  'mcp-error',
  'heartbeat',
  'connection-status',
] as const;

interface EventData {
  connectionId?: string;
  requestId?: string;
  status?: string;
  message?: string;
  result?: {
    tools?: { name: string }[];
    content?: { type: string; text?: string }[];
    structuredContent?: Record<string, unknown>;
    isError?: boolean;
  };
  error?: { code: number; message: string };
  metadata?: { progress?: { progress: number; total?: number; message?: string } };
}

interface Step {
  label: string;
  message: { method: string; params?: Record<string, unknown> };
  /** The event its answer comes as. */
  answeredBy: 'mcp-response' | 'tool-result';
  /** One short line about the answer. */
  summary(data: EventData): string;
}

const textOf = (data: EventData) =>
  (data.result?.content ?? [])
    .map((c) => c.text ?? '')
    .join(' ')
    .split('\n')[0];

function steps(options: TestSseOptions): Step[] {
  return [
    {
      label: 'tools/list',
      message: { method: 'tools/list' },
      answeredBy: 'mcp-response',
      summary: (d) => {
        const names = (d.result?.tools ?? []).map((t) => t.name);
        return `${names.length} tools: ${names.join(', ')}`;
      },
    },
    {
      label: 'list_projects',
      message: { method: 'tools/call', params: { name: 'list_projects', arguments: {} } },
      answeredBy: 'tool-result',
      summary: (d) => {
        const projects = d.result?.structuredContent?.projects;
        return Array.isArray(projects) ? `${projects.length} projects` : textOf(d);
      },
    },
    {
      label: 'simulate_work',
      message: {
        method: 'tools/call',
        params: {
          name: 'simulate_work',
          arguments: { steps: options.workSteps, delayMs: options.workDelayMs },
        },
      },
      answeredBy: 'tool-result',
      summary: textOf,
    },
  ];
}

export class TestSseFailure extends Error {}

/** Runs every step; resolves once all answered, rejects with TestSseFailure on any failure. */
export function runSession(options: TestSseOptions, out: Output): Promise<void> {
  const authorization = `Bearer ${options.token}`;
  const url = new URL(`${options.serverUrl}/mcp/sse`);
  if (options.events) url.searchParams.set('events', options.events.join(','));
  const received = (type: string) => options.events === null || options.events.includes(type);

  return new Promise<void>((resolve, reject) => {
    let openFailure = '';
    let connectionId = '';
    let lastEventId = '';
    let dropped = false;
    /** The last event id before the stream dropped: where the resume starts. */
    let resumeFrom = '';
    let current: { step: Step; requestId?: string } | null = null;
    const queue = steps(options);

    const es = new EventSource(url.href, {
      // The stream needs the token; a refused open keeps its body to say why.
      fetch: async (input, init) => {
        const res = await fetch(input, {
          ...init,
          headers: { ...init?.headers, Authorization: authorization },
        });
        if (!res.ok) openFailure = (await res.clone().text()).slice(0, 500);
        return res;
      },
    });
    const timer = setTimeout(
      () => finish(new TestSseFailure(`timed out after ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    const finish = (err?: Error) => {
      clearTimeout(timer);
      es.close();
      out.endProgress();
      if (err) reject(err);
      else resolve();
    };

    const next = (): void => {
      const step = queue.shift();
      if (!step) return finish();
      current = { step };
      void send(step).then(
        (requestId) => {
          if (current?.step !== step) return;
          current.requestId = requestId;
          if (!received(step.answeredBy)) {
            out.step(`${step.label}: sent, its answer is filtered out (--events)`);
            next();
          }
        },
        (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
      );
    };

    const send = async (step: Step): Promise<string> => {
      const res = await fetch(`${options.serverUrl}/mcp/sse/send`, {
        method: 'POST',
        headers: { Authorization: authorization, 'Content-Type': 'application/json' },
        body: JSON.stringify({ connectionId, message: step.message }),
      });
      const text = await res.text();
      let body: { requestId?: string } = {};
      try {
        body = JSON.parse(text) as { requestId?: string };
      } catch {
        // reported below with the text
      }
      if (res.status !== 202 || !body.requestId) {
        throw new TestSseFailure(`${step.label}: send failed: HTTP ${res.status} ${text}`);
      }
      return body.requestId;
    };

    const onEvent = (type: string, id: string, data: EventData) => {
      if (id) lastEventId = id;
      if (type === 'mcp-notification' && data.connectionId && !connectionId) {
        connectionId = data.connectionId;
        out.step(
          `connected: ${connectionId}${options.events ? ` (events: ${options.events.join(',')})` : ''}`,
        );
        next();
        return;
      }
      if (type === 'connection-status') {
        if (data.status === 'resumed') {
          out.step(`resumed ${data.connectionId ?? connectionId} after event ${resumeFrom}`);
        } else out.warn(`${data.status}: ${data.message ?? ''}`);
        return;
      }
      if (!current?.requestId || data.requestId !== current.requestId) return;
      const { step } = current;
      if (type === 'mcp-error') {
        finish(
          new TestSseFailure(`${step.label} failed: ${data.error?.code} ${data.error?.message}`),
        );
        return;
      }
      if (type === 'tool-result' && data.metadata?.progress) {
        const p = data.metadata.progress;
        out.progress(p.progress, p.total ?? options.workSteps, p.message ?? '');
        return;
      }
      if (type !== step.answeredBy) return;
      out.endProgress();
      if (data.result?.isError) {
        finish(new TestSseFailure(`${step.label} failed: ${textOf(data)}`));
        return;
      }
      out.step(`${step.label}: ${step.summary(data)}`);
      next();
    };

    for (const type of EVENT_TYPES) {
      es.addEventListener(type, (event) => {
        if (options.raw) out.event(type, event.lastEventId, event.data);
        let data: EventData;
        try {
          data = JSON.parse(event.data) as EventData;
        } catch {
          finish(new TestSseFailure(`${type} event with data that is not JSON: ${event.data}`));
          return;
        }
        try {
          onEvent(type, event.lastEventId, data);
        } catch (err) {
          finish(err instanceof Error ? err : new Error(String(err)));
        }
      });
    }
    es.onopen = () => {
      if (dropped) out.step('reconnected, waiting for the resume');
      dropped = false;
    };
    es.onerror = (err) => {
      if (es.readyState === EventSource.CONNECTING && connectionId) {
        // EventSource retries by itself, sending Last-Event-ID: the gateway replays what we missed.
        if (!dropped) {
          resumeFrom = lastEventId;
          out.endProgress();
          out.warn(
            `connection dropped; reconnecting with Last-Event-ID ${lastEventId || '(none)'}`,
          );
        }
        dropped = true;
        return;
      }
      // Refused, or never reached: no point retrying what never worked.
      const why = err.code
        ? `HTTP ${err.code}${openFailure ? ` ${openFailure}` : ''}`
        : `${err.message ?? 'closed'}${connectionId ? '' : ` (is ${options.serverUrl} up?)`}`;
      finish(new TestSseFailure(`stream failed: ${why}`));
    };
  });
}
