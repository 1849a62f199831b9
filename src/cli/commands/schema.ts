import { Argument, type Command } from 'commander';
import { configSchemaText } from '../../config/jsonschema.js';

export function register(program: Command): void {
  program
    .command('schema')
    .description("print the JSON Schema of server.yaml or client.yaml (the package ships them in schema/)")
    .addArgument(new Argument('<kind>', 'which config').choices(['server', 'client']))
    .action((kind: 'server' | 'client') => {
      process.stdout.write(configSchemaText(kind));
    });
}
