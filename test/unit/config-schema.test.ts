import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configSchema, configSchemaText } from '../../src/config/jsonschema.js';
import type { ConfigKind } from '../../src/config/kind.js';
import { tvpn } from './support/cli.js';
import { CHEAD, HEAD, PUB2, clientError, dir, example, pub, serverError, useConfigDir } from './support/config.js';

useConfigDir();

const ROOT = join(import.meta.dirname, '../..');
const ajv = new Ajv2020({ allErrors: true, allowUnionTypes: true });
const validators = { server: ajv.compile(configSchema('server')), client: ajv.compile(configSchema('client')) };

/** The schema's complaints about a YAML text, as "path: message" lines; none when it is valid. */
function schemaErrors(kind: ConfigKind, text: string): string[] {
  const validate = validators[kind];
  return validate(parse(text)) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message}`);
}

describe('config JSON Schema', () => {
  it.each(['server', 'client'] as const)('schema/%s.schema.json is what the generator makes now (npm run schema)', (kind) => {
    expect(readFileSync(join(ROOT, 'schema', `${kind}.schema.json`), 'utf8')).toBe(configSchemaText(kind));
  });

  it.each([
    ['server', 'server.yaml'],
    ['client', 'client.yaml'],
    ['server', 'docker/server.yaml'],
    ['client', 'docker/client.yaml'],
    ['server', 'fleet/server1.yaml'],
    ['server', 'fleet/server2.yaml'],
  ] as const)('accepts configs/%s, its placeholders filled in, and names the schema in a modeline', (kind, name) => {
    const text = example(name);
    expect(text.split('\n')[0]).toBe(`# yaml-language-server: $schema=${name.includes('/') ? '../' : ''}../schema/${kind}.schema.json`);
    expect(schemaErrors(kind, text.replace(/: <[^>\n]*>/g, `: ${PUB2}`))).toEqual([]);
  });

  it('accepts the loader tests\' minimal configs', () => {
    expect(schemaErrors('server', HEAD)).toEqual([]);
    expect(schemaErrors('client', CHEAD)).toEqual([]);
  });

  it("accepts what 'tvpn init' and 'add-client' write; init's names this installation's schema", async () => {
    const home = join(dir, 'init');
    mkdirSync(home);
    const [server, laptop] = [join(home, 'server.yaml'), join(home, 'laptop.yaml')];
    expect((await tvpn('init', '-c', server, '--endpoint', 'vpn.example.com:51820')).code).toBe(0);
    expect((await tvpn('add-client', 'laptop', '-c', server, '--out', laptop, '--no-reload')).code).toBe(0);
    const text = readFileSync(server, 'utf8');
    expect(text.split('\n')[0]).toBe(`# yaml-language-server: $schema=${pathToFileURL(join(ROOT, 'schema/server.schema.json')).href}`);
    expect(schemaErrors('server', text)).toEqual([]);
    expect(schemaErrors('client', readFileSync(laptop, 'utf8'))).toEqual([]);
  });

  // Each is refused by the loader too, so an editor flags what 'tvpn check' would.
  it.each([
    'colour: blue',
    'push:\n  rutes: [10.0.0.0/8]',
    'client_to_client: yes',
    'push:\n  mtu: 9500',
    'push:\n  keepalive: 3601',
    'push:\n  dns: 10.8.0.1',
    `push:\n  dns: [${Array.from({ length: 9 }, (_, i) => `10.8.0.${i + 1}`).join(', ')}]`,
    'log_level: verbose',
    'listen: 51820',
    'clients:\n  - name: laptop',
    `clients:\n  - name: -laptop\n    public_key: ${PUB2}`,
    `clients:\n  - name: laptop\n    public_key: ${PUB2}\n    expires: 2026-12-31T18:00`,
    `private_key: ${pub(5)}`,
  ])('refuses what the loader refuses: %s', (body) => {
    expect(serverError(HEAD + body)).toMatch(/^DIR\/server\.yaml/);
    expect(schemaErrors('server', HEAD + body)).not.toEqual([]);
  });

  it.each(['interface: { mtu: 100 }', 'accept: { routes: 1 }', 'keepalive: -1', 'server: { endpoint: x:1 }'])('refuses in a client config: %s', (body) => {
    const text = body.startsWith('server:') ? `${body}\nprivate_key_file: client.key\n` : CHEAD + body;
    expect(clientError(text)).toMatch(/^DIR\/client\.yaml/);
    expect(schemaErrors('client', text)).not.toEqual([]);
  });

  it('marks control_socket deprecated and describes every key', () => {
    const root = configSchema('server') as { properties: Record<string, { description?: string; deprecated?: boolean }> };
    expect(root.properties['control_socket']?.deprecated).toBe(true);
    expect(Object.values(root.properties).every((p) => p.description !== undefined)).toBe(true);
  });
});
