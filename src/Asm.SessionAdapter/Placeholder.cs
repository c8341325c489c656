namespace Asm.SessionAdapter; internal static class Placeholder { }
