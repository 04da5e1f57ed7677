fn main() {
    std::process::exit(ripcord_cli::run());
}
