// Deployment settings: CDK context first (`cdk deploy -c stage=prod`), then the environment
// (VIGIL_STAGE, ...), then a default. No account id or phone number is ever configured here:
// the account comes from the credentials CDK deploys with, phone numbers live in `orders`.

import { RetentionDays } from 'aws-cdk-lib/aws-logs';

export interface VigilConfig {
  /** Deployment stage; part of every physical name (`vigil-<stage>-<logical>`). */
  readonly stage: string;
  /** AWS region to deploy to. */
  readonly region: string;
  /** Alphanumeric SMS sender ID (UK: up to 11 characters), or none for a shared number. */
  readonly smsSenderId?: string;
  /** Countries whose numbers the alert function may text (ISO 3166 codes; default GB). */
  readonly smsCountries: readonly string[];
  /** Monthly SMS spend limit in USD: set on the account by the stack, and the spend alarm's basis. */
  readonly smsMonthlySpendLimitUsd: number;
  /** Whether this stack applies the account's SMS settings (lib/sms.ts); false: it prints the
   * command instead (another stage in the same account owns them). */
  readonly manageSmsSettings: boolean;
  /** CloudWatch Logs retention for the functions' log groups. */
  readonly logRetentionDays: RetentionDays;
  /** Reserved concurrency: caps each function so a flood of fixes cannot starve the other. */
  readonly ingestReservedConcurrency: number;
  readonly alertReservedConcurrency: number;
  /** Synthesize without building the Rust functions (tests and lint only; never deployable). */
  readonly skipBundling: boolean;
  /** The IoT data plane host the alert function publishes pursuit-mode commands to (the
   * account's `iot:Data-ATS` endpoint, `aws iot describe-endpoint --endpoint-type
   * iot:Data-ATS`); none: the SDK's default for the region (`data-ats.iot.<region>.amazonaws.com`). */
  readonly iotDataEndpoint?: string;
  /** The forces file (docs/FORCES.md) when not the shipped infra/forces.json: a path, relative
   * to the working directory. */
  readonly forcesFile?: string;
  /** A tile server's URL template for the console's map (`https://host/{z}/{x}/{y}.png`, one
   * host: the content security policy allows it); none: zones and tracks on a plain background. */
  readonly consoleTileUrl?: string;
}

/** Anything that has CDK context: an App, or a plain lookup in tests. */
export interface ContextSource {
  tryGetContext(key: string): unknown;
}

/** Context key -> environment variable. */
export const SETTINGS = {
  stage: 'VIGIL_STAGE',
  region: 'VIGIL_REGION',
  smsSenderId: 'VIGIL_SMS_SENDER_ID',
  smsCountries: 'VIGIL_SMS_COUNTRIES',
  smsMonthlySpendLimitUsd: 'VIGIL_SMS_MONTHLY_SPEND_LIMIT_USD',
  manageSmsSettings: 'VIGIL_MANAGE_SMS_SETTINGS',
  logRetentionDays: 'VIGIL_LOG_RETENTION_DAYS',
  ingestReservedConcurrency: 'VIGIL_INGEST_RESERVED_CONCURRENCY',
  alertReservedConcurrency: 'VIGIL_ALERT_RESERVED_CONCURRENCY',
  skipBundling: 'VIGIL_SKIP_BUNDLING',
  iotDataEndpoint: 'VIGIL_IOT_DATA_ENDPOINT',
  forcesFile: 'VIGIL_FORCES_FILE',
  consoleTileUrl: 'VIGIL_CONSOLE_TILE_URL',
} as const;

export const DEFAULTS = {
  stage: 'dev',
  // London: the tags and victims are in the UK.
  region: 'eu-west-2',
  smsCountries: 'GB',
  smsMonthlySpendLimitUsd: 100,
  logRetentionDays: 90,
  // Sized for thousands of tags at one fix every 15 s (about 10 ms each): far below 1 busy
  // instance per 1,000 tags. Accounts with a low concurrency quota can lower these.
  ingestReservedConcurrency: 20,
  alertReservedConcurrency: 5,
} as const;

export function readConfig(ctx: ContextSource, env: NodeJS.ProcessEnv = process.env): VigilConfig {
  const get = (key: keyof typeof SETTINGS): string | undefined => {
    const v = ctx.tryGetContext(key) ?? env[SETTINGS[key]];
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const bad = (key: keyof typeof SETTINGS, value: string, rule: string): never => {
    throw new Error(`setting ${key} (context -c ${key}=..., or ${SETTINGS[key]}) is ${JSON.stringify(value)}: ${rule}`);
  };
  const whole = (key: keyof typeof SETTINGS, fallback: number, min: number): number => {
    const v = get(key);
    if (v === undefined) return fallback;
    const n = Number(v);
    return Number.isInteger(n) && n >= min ? n : bad(key, v, `must be a whole number >= ${min}`);
  };

  const stage = get('stage') ?? DEFAULTS.stage;
  // Narrower than VIGIL_STAGE allows ('-' too): the stage is part of IoT rule names, which
  // allow only [A-Za-z0-9_], and the tag policy names the Basic Ingest topic by rule name.
  if (!/^[A-Za-z0-9]{1,20}$/.test(stage)) bad('stage', stage, 'must be 1-20 letters and digits');

  // Not CDK_DEFAULT_REGION: the CLI fills that from the local profile (us-east-1 when none),
  // and a deployment region should be chosen on purpose.
  const region = get('region') ?? DEFAULTS.region;
  if (!/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(region)) bad('region', region, 'must be an AWS region such as eu-west-2');

  const smsSenderId = get('smsSenderId');
  // Alphanumeric sender IDs: 3-11 characters, letters and digits, at least one letter.
  if (smsSenderId !== undefined && !/^(?=.*[A-Za-z])[A-Za-z0-9]{3,11}$/.test(smsSenderId)) {
    bad('smsSenderId', smsSenderId, 'must be 3-11 letters and digits with at least one letter');
  }

  // The deployment's own country only, by default: nobody can make the alert function text
  // numbers elsewhere (premium-rate fraud, or a victim's number redirected abroad).
  const countriesText = get('smsCountries') ?? DEFAULTS.smsCountries;
  const smsCountries = countriesText.split(',').map((c) => c.trim().toUpperCase());
  if (smsCountries.some((c) => !/^[A-Z]{2}$/.test(c))) bad('smsCountries', countriesText, 'must be comma-separated two-letter country codes, e.g. GB or GB,IE');

  // A host name only: the stack adds https:// (the data plane is HTTPS with SigV4, port 443).
  const iotDataEndpoint = get('iotDataEndpoint');
  if (iotDataEndpoint !== undefined && !/^(?=.{4,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(iotDataEndpoint)) {
    bad('iotDataEndpoint', iotDataEndpoint, 'must be a host name without scheme, port or path, e.g. a1b2c3d4e5f6g7-ats.iot.eu-west-2.amazonaws.com');
  }

  const consoleTileUrl = get('consoleTileUrl');
  if (consoleTileUrl !== undefined && !/^https:\/\/[a-z0-9.-]+(:\d+)?\/\S*\{z\}\S*\{x\}\S*\{y\}\S*$/.test(consoleTileUrl)) {
    bad('consoleTileUrl', consoleTileUrl, 'must be an https URL template on one host with {z}, {x} and {y}, e.g. https://tiles.example.org/{z}/{x}/{y}.png');
  }

  const days = whole('logRetentionDays', DEFAULTS.logRetentionDays, 1);
  const allowed = Object.values(RetentionDays).filter((d): d is number => typeof d === 'number' && d > 0);
  if (!allowed.includes(days)) bad('logRetentionDays', String(days), `must be one of ${allowed.join(', ')}`);

  const flag = (key: 'skipBundling' | 'manageSmsSettings', fallback: boolean): boolean => {
    const v = get(key);
    if (v === undefined) return fallback;
    return v === 'true' ? true : v === 'false' ? false : bad(key, v, 'must be true or false');
  };

  return {
    stage,
    region,
    smsSenderId,
    smsCountries,
    smsMonthlySpendLimitUsd: whole('smsMonthlySpendLimitUsd', DEFAULTS.smsMonthlySpendLimitUsd, 1),
    logRetentionDays: days as RetentionDays,
    ingestReservedConcurrency: whole('ingestReservedConcurrency', DEFAULTS.ingestReservedConcurrency, 1),
    alertReservedConcurrency: whole('alertReservedConcurrency', DEFAULTS.alertReservedConcurrency, 1),
    manageSmsSettings: flag('manageSmsSettings', true),
    skipBundling: flag('skipBundling', false),
    iotDataEndpoint,
    forcesFile: get('forcesFile'),
    consoleTileUrl,
  };
}
