/* Placeholder until the program's commands land. */
int main(void)
{
    return 0;
}
