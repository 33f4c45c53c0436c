import ArgumentParser
import SpadeTrain

@main
struct SpadeDistCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spade-dist",
        abstract: "Train SPADE (GauGAN) on CPUs, data-parallel over MPI.")
}
