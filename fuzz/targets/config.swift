// libFuzzer target: the YAML config and `--set` values. The input is a YAML document, then
// (after a line `--set`) one `key=value` per line. Every input must load or give a
// ConfigError; a config that loads must survive the round trip every checkpoint makes
// (its effective YAML parses back to the same config).
import Foundation
import SpadeTrain

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let parts = text.components(separatedBy: "\n--set\n")
    var config = TrainConfig()
    do {
        try config.apply(yaml: parts[0], source: "fuzz.yaml")
        for assignment in parts.dropFirst().flatMap({ $0.split(separator: "\n") }) {
            try config.apply(assignment: String(assignment))
        }
        config.applyConditionalDefaults()
        try config.validate(source: "fuzz.yaml")
    } catch is ConfigError {
        return 0
    } catch {
        preconditionFailure("not a ConfigError: \(error)")
    }
    let again = try! TrainConfig.parse(yaml: config.yaml(), source: "effective")
    precondition(again == config, "the effective YAML does not parse back to the same config")
    return 0
}
