import type { CodegenConfig } from '@graphql-codegen/cli';

// schema/*.graphql is the single source of truth: resolver types are generated from it and
// mapped onto the hub's own event types, so a schema change that the code does not follow
// fails type-checking. `npm run codegen:check` fails CI when the generated file is stale.
const config: CodegenConfig = {
  schema: 'schema/*.graphql',
  // ESM output: relative imports carry their .js extension.
  emitLegacyCommonJSImports: false,
  generates: {
    // Typed operations for the client package (packages/client, published on its own) and the CLIs.
    'packages/client/src/generated/': {
      documents: ['packages/client/src/operations.ts'],
      preset: 'client',
      config: {
        documentMode: 'string',
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: { DateTime: 'string', JSONObject: 'Record<string, unknown>' },
      },
      presetConfig: { fragmentMasking: false },
    },
    'src/graphql/generated.ts': {
      plugins: ['typescript', 'typescript-resolvers'],
      config: {
        useTypeImports: true,
        contextType: './context.js#GraphQLContext',
        strictScalars: true,
        scalars: { DateTime: 'Date', JSONObject: 'Record<string, unknown>' },
        enumsAsTypes: true,
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
        mappers: {
          DiagnosisEvent: '../domain/events.js#HubEvent',
          RecommendationUpdate: '../domain/events.js#RecommendationEvent',
          EffectivenessUpdate: '../domain/events.js#EffectivenessEvent',
          FeedbackUpdate: '../domain/events.js#FeedbackEvent',
          HistoryGap: '../domain/events.js#GapEvent',
          AccessEnded: '../domain/events.js#AccessEndedEvent',
          BroadcastReceipt: '../hub/hub.js#Receipt',
          HubStatus: '../hub/hub.js#StatusRoot',
        },
      },
    },
  },
};

export default config;
