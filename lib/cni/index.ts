/**
 * The CNI contract shared by netplumb's plugins: environment and stdin parsing with the spec's rules,
 * error codes, Result types with version conversion and chaining, the plugin skeleton, delegation to other
 * plugins (exec from CNI_PATH, or in process for plugins the caller names). Importing this module loads neither netlink
 * nor koffi nor execa: those are loaded on the paths that need them.
 * See docs/CNI.md for the rest.
 */
export { UndoStack, withRollback } from './rollback.js';
export { runPlugin, handle, type CniPlugin, type Outcome, type HandleOptions } from './skeleton.js';
export { decodeFields, decodeNetConf, foldKey, mergeFields, NETCONF_FIELDS, RESULT_FIELDS, type FieldTable, type FieldType } from './decode.js';
export { parseRequest, readStdin, checkNetns, MAX_STDIN_BYTES, type CniRequest, type NetConf, type GcAttachment } from './request.js';
export { parseEnv, parseCniArgs, cniArgsValues, isCommand, COMMANDS, type CniEnv, type CniCommand } from './env.js';
export { CniError, CNI_ERR, cniCodeName, toCniError, unsupportedField, invalidEnv, invalidConfig, type CniErrorJson, type CniErrorInit } from './errors.js';
export {
  parseResult,
  convertResult,
  formatResult,
  type CniResult,
  type CniInterface,
  type CniIpConfig,
  type CniRoute,
  type CniDns,
  type ParseResultOptions,
} from './types.js';
export { SUPPORTED_VERSIONS, CURRENT_VERSION, isSupportedVersion, compareVersions, versionAtLeast, MIN_VERSION_FOR, type CniVersion } from './version.js';
export {
  delegate,
  execPlugin,
  findInPath,
  delegateEnv,
  validatePluginType,
  type DelegateOptions,
  type ExecPluginOptions,
  type InProcessPlugins,
} from './delegate.js';
export { chainResult } from './chain.js';
