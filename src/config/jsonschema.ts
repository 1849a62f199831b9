/**
 * The JSON Schema (draft 2020-12) of server.yaml and client.yaml, built from the key tables in
 * fields.ts. schema/*.schema.json hold its output (`npm run schema`; a unit test keeps them
 * current), and the example configs point editors at them with a yaml-language-server modeline.
 * An empty value is allowed everywhere, as the loader reads it as the default.
 */
import { CONFIGS, type Field, type Rule, type Shape } from './fields.js';
import type { ConfigKind } from './kind.js';

type Schema = Record<string, unknown>;

function ruleSchema(rule: Rule): Schema {
  return 'oneOf' in rule ? { oneOf: rule.oneOf.map((key) => ({ required: [key] })) } : { not: { required: rule.notBoth } };
}

/** The schema of one value; `orNull` admits an empty value (a key's, not a list item's). */
function shapeSchema(shape: Shape, orNull: boolean): Schema {
  const type = (t: string): string | string[] => (orNull ? [t, 'null'] : t);
  switch (shape.type) {
    case 'string': {
      const { pattern, minLength } = shape;
      return { type: type('string'), ...(pattern !== undefined && { pattern }), ...(minLength !== undefined && { minLength }) };
    }
    case 'integer':
      return { type: type('integer'), minimum: shape.min, maximum: shape.max };
    case 'boolean':
      return { type: type('boolean') };
    case 'enum':
      return { enum: orNull ? [...shape.values, null] : shape.values };
    case 'list':
      return { type: type('array'), items: shapeSchema(shape.items, false), ...(shape.maxItems !== undefined && { maxItems: shape.maxItems }) };
    case 'oneOrTwo': {
      const item = shapeSchema(shape.item, false);
      const forms = [item, { type: 'array', items: item, minItems: 1, maxItems: 2 }];
      return { anyOf: orNull ? [...forms, { type: 'null' }] : forms };
    }
    case 'section': {
      const entries = Object.entries(shape.fields);
      const required = entries.filter(([, f]) => f.required).map(([key]) => key);
      return {
        type: type('object'),
        properties: Object.fromEntries(entries.map(([key, field]) => [key, fieldSchema(field)])),
        ...(required.length > 0 && { required }),
        additionalProperties: false,
        ...(shape.rule && ruleSchema(shape.rule)),
      };
    }
  }
}

function fieldSchema(field: Field): Schema {
  return {
    description: field.description,
    ...shapeSchema(field.shape, !field.required),
    ...(field.default !== undefined && { default: field.default }),
    ...(field.deprecated && { deprecated: true }),
  };
}

/** The schema of a config kind. */
export function configSchema(kind: ConfigKind): Schema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `tvpn ${kind}.yaml`,
    description: `tvpn ${kind} configuration; every key is explained in configs/${kind}.yaml`,
    ...shapeSchema(CONFIGS[kind], false),
  };
}

/** The schema file's text, as committed under schema/. */
export const configSchemaText = (kind: ConfigKind): string => `${JSON.stringify(configSchema(kind), null, 2)}\n`;
