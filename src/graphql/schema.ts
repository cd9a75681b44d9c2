import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DateTimeResolver, JSONObjectResolver } from 'graphql-scalars';
import { createSchema } from 'graphql-yoga';
import type { GraphQLContext } from './context.js';
import type { Resolvers } from './generated.js';
import { Mutation } from './mutation.js';
import { HubStatus, Query } from './query.js';
import { Subscription } from './subscription.js';

const resolvers: Resolvers = {
  DateTime: DateTimeResolver,
  JSONObject: JSONObjectResolver,
  DiagnosisEvent: { __resolveType: (event) => event.__typename },
  Query,
  Mutation,
  Subscription,
  HubStatus,
};

/** The executable schema: type definitions from schema/*.graphql plus the resolvers. */
export function createHubSchema() {
  return createSchema<Record<string, unknown> & GraphQLContext>({ typeDefs: loadTypeDefs(), resolvers });
}

/** Reads schema/*.graphql from the package root (the same from src/ and from dist/). */
function loadTypeDefs(): string[] {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'schema', 'hub.graphql'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('schema/ not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  const schemaDir = join(dir, 'schema');
  return readdirSync(schemaDir)
    .filter((file) => file.endsWith('.graphql'))
    .sort()
    .map((file) => readFileSync(join(schemaDir, file), 'utf8'));
}
