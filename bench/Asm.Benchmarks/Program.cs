// Micro-benchmarks of Asm (see docs/benchmarks.md):
//   dotnet run -c Release --project bench/Asm.Benchmarks -- --filter '*'
//   REDIS=127.0.0.1:6379 dotnet run -c Release --project bench/Asm.Benchmarks -- --filter '*Driver*'
using Asm.Benchmarks;
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, new BenchConfig());
