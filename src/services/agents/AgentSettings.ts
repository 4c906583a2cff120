import type { SessionConfigOption, SessionModeState } from "@agentclientprotocol/sdk"
import { Either } from "effect"
import { InvalidConfig } from "../../domain/Errors.js"
import { ConfigOption, type AgentSettings } from "../../domain/Session.js"

/** One ACP call that changes a setting. */
export type SettingStep =
  | { readonly method: "session/set_mode"; readonly modeId: string }
  | { readonly method: "session/set_config_option"; readonly configId: string; readonly value: string | boolean }

/**
 * What an agent session offers and runs with: its config options and its modes (shown as one
 * more option, id `mode`, when no config option has the `mode` category), as the API shows them.
 */
export interface SettingsState {
  readonly model: string | null
  readonly mode: string | null
  readonly config_options: ReadonlyArray<ConfigOption>
  /** How each option is set: by `session/set_mode`, or `session/set_config_option` with a string or a boolean. */
  readonly setters: ReadonlyMap<string, Setter>
}

type Setter = "modes" | "select" | "boolean"

export const noSettings: SettingsState = { model: null, mode: null, config_options: [], setters: new Map() }

/** The id under which session modes appear when the agent has no `mode` config option. */
const modesId = "mode"

const flatten = (option: SessionConfigOption) => {
  if (option.type === "boolean") return [{ value: "true", name: "On" }, { value: "false", name: "Off" }]
  const options = (option as { options?: ReadonlyArray<any> }).options ?? []
  return options.flatMap((entry): Array<{ value: string; name: string }> =>
    Array.isArray(entry.options)
      ? entry.options.map((inner: any) => ({ value: String(inner.value), name: String(inner.name ?? inner.value) }))
      : [{ value: String(entry.value), name: String(entry.name ?? entry.value) }]
  )
}

const fromConfigOption = (option: SessionConfigOption) =>
  new ConfigOption({
    id: option.id,
    name: option.name,
    category: option.category ?? null,
    current_value: option.currentValue === undefined || option.currentValue === null ? null : String(option.currentValue),
    options: flatten(option)
  }, true)

const fromModes = (modes: SessionModeState) =>
  new ConfigOption({
    id: modesId,
    name: "Mode",
    category: "mode",
    current_value: modes.currentModeId,
    options: modes.availableModes.map((mode) => ({ value: mode.id, name: mode.name }))
  }, true)

const byCategory = (options: ReadonlyArray<ConfigOption>, category: string) =>
  options.find((option) => option.category === category) ?? options.find((option) => option.id === category)

const summarize = (config_options: ReadonlyArray<ConfigOption>, setters: ReadonlyMap<string, Setter>): SettingsState => ({
  model: byCategory(config_options, "model")?.current_value ?? null,
  mode: byCategory(config_options, "mode")?.current_value ?? null,
  config_options,
  setters
})

const settersOf = (configOptions: ReadonlyArray<SessionConfigOption>, modes: boolean) => {
  const setters = new Map<string, Setter>(configOptions.map((option) => [option.id, option.type === "boolean" ? "boolean" : "select"]))
  if (modes) setters.set(modesId, "modes")
  return setters
}

/** What `session/new` (or load, resume) answered about the session's settings. */
export const settingsOf = (
  configOptions: ReadonlyArray<SessionConfigOption> | null | undefined,
  modes: SessionModeState | null | undefined
): SettingsState => {
  const options = (configOptions ?? []).map(fromConfigOption)
  const showModes = modes != null && modes.availableModes.length > 0 && byCategory(options, "mode") === undefined
  return summarize(showModes ? [...options, fromModes(modes)] : options, settersOf(configOptions ?? [], showModes))
}

/** The settings after a `config_option_update` (all options, as the agent sends them). */
export const withConfigOptions = (state: SettingsState, configOptions: ReadonlyArray<SessionConfigOption>) => {
  const modes = state.setters.get(modesId) === "modes"
    ? state.config_options.find((option) => option.id === modesId)
    : undefined
  const options = configOptions.map(fromConfigOption)
  const showModes = modes !== undefined && byCategory(options, "mode") === undefined
  return summarize(showModes ? [...options, modes] : options, settersOf(configOptions, showModes))
}

/** The settings after a `current_mode_update`. */
export const withCurrentMode = (state: SettingsState, modeId: string) =>
  summarize(state.config_options.map((option) =>
    option.category === "mode" || option.id === modesId
      ? new ConfigOption({ ...option, current_value: modeId }, true)
      : option
  ), state.setters)

/**
 * The ACP calls that apply `changes`, or `invalid_config` naming what the agent offers when a
 * value is not offered (nothing is applied then).
 */
export const planSettings = (
  state: SettingsState,
  changes: AgentSettings
): Either.Either<Array<SettingStep>, InvalidConfig> => {
  const offered = Object.fromEntries(state.config_options.map((option) => [option.id, option.options.map((o) => o.value)]))
  const steps: Array<SettingStep> = []
  const problems: Array<string> = []
  const wanted: Array<[label: string, option: ConfigOption | undefined, value: string]> = []
  if (changes.model !== undefined) wanted.push(["model", byCategory(state.config_options, "model"), changes.model])
  if (changes.mode !== undefined) wanted.push(["mode", byCategory(state.config_options, "mode"), changes.mode])
  for (const [id, value] of Object.entries(changes.config ?? {})) {
    wanted.push([id, state.config_options.find((option) => option.id === id), value])
  }
  for (const [label, option, value] of wanted) {
    if (option === undefined) {
      problems.push(`this agent offers no ${label === "model" || label === "mode" ? label : `config option "${label}"`}`)
    } else if (!option.options.some((o) => o.value === value)) {
      problems.push(`${label} "${value}" is not offered (${option.options.map((o) => o.value).join(", ")})`)
    } else {
      const setter = state.setters.get(option.id)
      steps.push(
        setter === "modes"
          ? { method: "session/set_mode", modeId: value }
          : { method: "session/set_config_option", configId: option.id, value: setter === "boolean" ? value === "true" : value }
      )
    }
  }
  if (problems.length === 0) return Either.right(steps)
  const offers = Object.entries(offered).map(([id, values]) => `${id}: ${values.join(", ")}`).join("; ")
  return Either.left(
    new InvalidConfig({
      message: `${problems.join("; ")}. The agent offers ${offers === "" ? "no settings" : offers}`,
      offered
    })
  )
}
